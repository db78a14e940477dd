//! @file
//! normkit/tensor.hpp — the non-owning tensor view every normkit function takes, and the
//! library's error type. Views carry shape and strides (in elements, not bytes) so that a
//! caller's buffer is used in place; an empty stride list means row-major contiguous.
#pragma once

#include "normkit/export.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace normkit {

using Shape = std::vector<int64_t>;    ///< sizes of a tensor, outermost first
using Strides = std::vector<int64_t>;  ///< distance between neighbours along each dim, in elements

/// Thrown for every invalid argument. what() starts with the operation in brackets and names
/// the offending value, e.g. "[group_norm] num_channels=10 is not divisible by num_groups=4".
/// When it is thrown nothing has been written: outputs and running statistics are untouched.
class NORMKIT_API Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Row-major strides of `shape`.
NORMKIT_API Strides contiguous_strides(const Shape& shape);
/// Number of elements (product of the sizes; 1 for a rank-0 shape). Throws Error when the
/// product overflows int64.
NORMKIT_API int64_t numel(const Shape& shape);
/// "32x256x14x14"
NORMKIT_API std::string shape_str(const Shape& shape);

/// A view of `data` with the given shape and strides. T is `float`, `double` or a const
/// version of them. Strides may be any non-negative values (views of views, channels-last).
template <class T>
struct TensorView {
  T* data = nullptr;  ///< the element at index (0, ..., 0)
  Shape shape;        ///< sizes
  Strides strides;    ///< empty = contiguous

  TensorView() = default;  ///< an empty view
  /// A view of d with shape s; empty strides mean row-major contiguous.
  TensorView(T* d, Shape s, Strides st = {}) : data(d), shape(std::move(s)), strides(std::move(st)) {
    if (strides.empty()) strides = contiguous_strides(shape);
  }
  /// A mutable view converts to a const one.
  template <class U>
  TensorView(const TensorView<U>& o) : data(o.data), shape(o.shape), strides(o.strides) {}

  int64_t dim() const { return static_cast<int64_t>(shape.size()); }       ///< the rank
  int64_t size(int64_t i) const { return shape[static_cast<size_t>(i)]; }  ///< shape[i]
  int64_t numel() const { return normkit::numel(shape); }                  ///< number of elements
};

}  // namespace normkit
