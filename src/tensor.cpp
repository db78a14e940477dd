// tensor.cpp — shape helpers shared by every op, and the engine's thread count.
#include <omp.h>

#include <algorithm>

#include "normkit/normkit.hpp"

namespace normkit {

Strides contiguous_strides(const Shape& shape) {
  Strides s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * std::max<int64_t>(shape[i], 1);
  return s;
}

// Checked: a product beyond int64 is an Error, never signed overflow (the ops check shapes
// at the door first, with their own name in the message).
int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      throw Error("[numel] shape " + shape_str(shape) + " has more elements than int64 can count (overflow)");
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s.empty() ? "scalar" : s;
}

void set_num_threads(int n) { omp_set_num_threads(std::max(1, n)); }
int get_num_threads() { return omp_get_max_threads(); }

}  // namespace normkit
