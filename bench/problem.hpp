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

struct FloatBuffer {
  std::unique_ptr<float, void (*)(void*)> p{nullptr, nullptr};
  size_t n = 0;
};

// A Problem plus the memory behind its pointers.
struct OwnedProblem {
  Problem p;
  std::vector<FloatBuffer> storage;
};

// `sets` copies of (x, dy, y, dx); every set holds different data.
std::unique_ptr<OwnedProblem> make_problem(const Case& c, int sets);

// The oracle's outputs on set 0: y, dx, dweight, dbias (when affine), and for BatchNorm
// training the running statistics after one forward.
Outputs reference_outputs(const Problem& p);

// Compares `got` with `want` on the given keys; returns "" when they agree, else a message
// naming the first offending tensor, index and values. A key `got` lacks is an error.
std::string compare_outputs(const Outputs& got, const Outputs& want, const std::vector<std::string>& keys);

}  // namespace nkbench
