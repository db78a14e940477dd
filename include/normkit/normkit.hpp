//! @file
//! normkit/normkit.hpp — the whole public C++ API in one include.
#pragma once

#define NORMKIT_VERSION_MAJOR 0  ///< major version
#define NORMKIT_VERSION_MINOR 1  ///< minor version
#define NORMKIT_VERSION_PATCH 0  ///< patch version
#define NORMKIT_VERSION "0.1.0"  ///< the version string

#include "normkit/extras.hpp"
#include "normkit/guide.hpp"
#include "normkit/half.hpp"
#include "normkit/layers.hpp"
#include "normkit/ops.hpp"
#include "normkit/plan.hpp"
#include "normkit/tensor.hpp"

namespace normkit {
/// Threads the engine may use (OpenMP). Results are bitwise identical for any count.
NORMKIT_API void set_num_threads(int n);
NORMKIT_API int get_num_threads();  ///< threads the engine uses at most
}  // namespace normkit
