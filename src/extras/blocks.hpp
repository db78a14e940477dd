// blocks.hpp — what the fused extras share: strided elementwise loops over a view, and the
// cutting of a tensor into blocks of whole statistics small enough to stay in cache, so a
// fused op writes its intermediate once and reads it back from cache, not from memory.
// Block boundaries depend on the shape only (never on the thread count): results stay bitwise
// identical for any number of threads, as the engine promises.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "normkit/tensor.hpp"

namespace normkit::extras {

// Elements per block: a few tensors of this many floats fit in L2 together.
inline constexpr int64_t kBlockElems = int64_t{1} << 15;
// Below this many elements a parallel region costs more than it saves.
inline constexpr int64_t kParallelElems = int64_t{1} << 15;

// Calls f(offset, len, stride) for runs covering every element of (shape, strides), in
// row-major order; adjacent dims that are one dense block are merged first, so a
// contiguous tensor is a single run with stride 1.
template <class F>
void for_each_run(const Shape& shape, const Strides& strides, F&& f) {
  Shape sh;
  Strides st;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) return;
    if (shape[i] == 1) continue;
    if (!sh.empty() && st.back() == strides[i] * shape[i]) {
      sh.back() *= shape[i];
      st.back() = strides[i];
      continue;
    }
    sh.push_back(shape[i]);
    st.push_back(strides[i]);
  }
  if (sh.empty()) return f(int64_t{0}, int64_t{1}, int64_t{1});
  const size_t outer = sh.size() - 1;
  std::vector<int64_t> coord(outer, 0);
  int64_t base = 0;
  while (true) {
    f(base, sh[outer], st[outer]);
    size_t i = outer;
    while (i > 0) {
      --i;
      base += st[i];
      if (++coord[i] < sh[i]) break;
      base -= sh[i] * st[i];
      coord[i] = 0;
      if (i == 0) return;
    }
    if (outer == 0) return;
  }
}

// A view cut along its leading `lead` dims into blocks of whole rows: the leading dims are
// merged into one row index (when their strides allow it, else the whole view is one block).
struct RowBlocks {
  bool merged = false;    // leading dims collapsed into one row axis
  int64_t rows = 1;       // product of the leading dims
  int64_t row_stride = 0; // memory distance between consecutive rows (when merged)
  int64_t per_block = 1;  // rows per block
  int64_t count = 1;      // number of blocks
  Shape inner;            // the trailing (normalized) dims
  Strides inner_strides;

  RowBlocks(const Shape& shape, const Strides& strides, size_t lead) {
    inner.assign(shape.begin() + static_cast<std::ptrdiff_t>(lead), shape.end());
    inner_strides.assign(strides.begin() + static_cast<std::ptrdiff_t>(lead), strides.end());
    int64_t row_len = 1;
    for (int64_t d : inner) row_len *= d;
    std::vector<size_t> big;  // leading dims longer than 1: they must form one dense axis
    for (size_t i = 0; i < lead; ++i) {
      rows *= shape[i];
      if (shape[i] != 1) big.push_back(i);
    }
    merged = lead > 0;
    for (size_t j = 0; j + 1 < big.size(); ++j)
      if (strides[big[j]] != strides[big[j + 1]] * shape[big[j + 1]]) merged = false;
    if (!merged || rows == 0 || row_len == 0) {
      merged = false;
      return;
    }
    row_stride = big.empty() ? 0 : strides[big.back()];
    per_block = std::max<int64_t>(1, kBlockElems / row_len);
    count = (rows + per_block - 1) / per_block;
  }

  // Rows [r0, r1) of block b.
  int64_t begin(int64_t b) const { return b * per_block; }
  int64_t end(int64_t b) const { return std::min(rows, (b + 1) * per_block); }

  // The view of rows [r0, r1) of t (which has the shape and strides this was built from).
  template <class T>
  TensorView<T> slice(const TensorView<T>& t, int64_t r0, int64_t r1) const {
    if (!merged) return t;
    Shape s{r1 - r0};
    Strides st{row_stride};
    s.insert(s.end(), inner.begin(), inner.end());
    st.insert(st.end(), inner_strides.begin(), inner_strides.end());
    return TensorView<T>(t.data + r0 * row_stride, std::move(s), std::move(st));
  }
  // The axes a sliced view normalizes over (and the affine parameters vary along).
  std::vector<int64_t> inner_axes(size_t lead) const {
    std::vector<int64_t> axes;
    const size_t first = merged ? 1 : lead, k = inner.size();
    for (size_t i = 0; i < k; ++i) axes.push_back(static_cast<int64_t>(first + i));
    return axes;
  }
};

}  // namespace normkit::extras
