// normkit/normkit.hpp — the whole public C++ API in one include.
#pragma once

#define NORMKIT_VERSION_MAJOR 0
#define NORMKIT_VERSION_MINOR 1
#define NORMKIT_VERSION_PATCH 0
#define NORMKIT_VERSION "0.1.0"

#include "normkit/guide.hpp"
#include "normkit/layers.hpp"
#include "normkit/ops.hpp"
#include "normkit/plan.hpp"
#include "normkit/tensor.hpp"

namespace normkit {
// Threads the engine may use (OpenMP). Results are bitwise identical for any count.
void set_num_threads(int n);
int get_num_threads();
}  // namespace normkit
