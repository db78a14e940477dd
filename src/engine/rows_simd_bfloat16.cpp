// rows_simd_bfloat16.cpp — rows_simd-inl.h's primitives for bfloat16 storage, compiled for every
// target, and rows.hpp's functions for bfloat16 dispatching to the best one at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/rows_simd_bfloat16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "engine/rows_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {
NORMKIT_ROWS_ENTRIES(bfloat16, B)
}  // namespace HWY_NAMESPACE
}  // namespace normkit::engine::rows
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace normkit::engine::rows {
NORMKIT_ROWS_DISPATCH(bfloat16, B)
}  // namespace normkit::engine::rows
#endif  // HWY_ONCE
