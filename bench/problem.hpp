// problem.hpp — builds a case's buffers (page-touched, 64-byte aligned, seeded data) and its
// reference outputs from the plain-loop oracle; compares an implementation's outputs with them.
// Kept apart from the timing code so that the check and the timing share the very same data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench.hpp"

namespace nkbench {

struct Buffer {
  std::unique_ptr<void, void (*)(void*)> p{nullptr, nullptr};
  size_t bytes = 0;
};

// A Problem plus the memory behind its pointers.
struct OwnedProblem {
  Problem p;
  std::vector<Buffer> storage;
};

// `sets` copies of (x, dy, y, dx); every set holds different data.
std::unique_ptr<OwnedProblem> make_problem(const Case& c, int sets);

// The oracle's outputs on set 0 (y and dx in the case's memory order): y, dx, dweight, dbias
// (when affine), and for BatchNorm
// training the running statistics after one forward.
Outputs reference_outputs(const Problem& p);

// A buffer of c.numel() elements of the case's dtype as float32 (exact: halves widen).
std::vector<float> to_float(const Case& c, const void* p);

// |got - want| <= tolerance(c) * max(1, max|want|) per tensor: 2e-3 for float32 (rounding
// differences stay far below it, a wrong formula does not), and for half storage the
// field's 2e-2 (bfloat16) and 5e-3 (float16) — the reference runs in float32 on the same
// rounded inputs, so only the outputs' own rounding is measured.
double tolerance(const Case& c);

// Compares `got` with `want` on the given keys; returns "" when they agree, else a message
// naming the first offending tensor, index and values. A key `got` lacks is an error.
std::string compare_outputs(const Outputs& got, const Outputs& want, const std::vector<std::string>& keys,
                            double tol = 2e-3);

}  // namespace nkbench
