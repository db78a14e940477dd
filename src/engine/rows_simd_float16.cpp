// rows_simd_float16.cpp — rows_simd-inl.h's primitives for float16 storage, compiled for every
// target, and rows.hpp's functions for float16 dispatching to the best one at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/rows_simd_float16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "engine/rows_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {
NORMKIT_ROWS_ENTRIES(float16, H)
}  // namespace HWY_NAMESPACE
}  // namespace normkit::engine::rows
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace normkit::engine::rows {
NORMKIT_ROWS_DISPATCH(float16, H)
}  // namespace normkit::engine::rows
#endif  // HWY_ONCE
