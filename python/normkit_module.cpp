// normkit_module.cpp — the Python module `normkit`: NumPy front end over the C++ functional
// API, with torch.nn.functional's argument names and order. Arrays whose strides are a
// permutation of dense strides are used in place and outputs get the same layout; the GIL
// is released while the engine runs. Argument conversion lives here, arithmetic does not.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>

#include "normkit/normkit.hpp"

// NumPy's float16 (NPY_HALF) is normkit::float16: same bits, so arrays are used in place.
namespace pybind11::detail {
template <>
struct npy_format_descriptor<normkit::float16> {
  static constexpr auto name = const_name("numpy.float16");
  static pybind11::dtype dtype() {
    constexpr int kNpyHalf = 23;
    if (auto* ptr = npy_api::get().PyArray_DescrFromType_(kNpyHalf)) return reinterpret_steal<pybind11::dtype>(ptr);
    pybind11_fail("numpy has no float16");
  }
};
}  // namespace pybind11::detail

namespace py = pybind11;
using normkit::Shape;
using normkit::Strides;
using normkit::TensorView;

namespace {

std::string tag(const char* op) { return std::string("[") + op + "] "; }

// "dtype=int64" for arrays, "type=list" for anything else.
std::string describe(py::handle obj) {
  if (py::isinstance<py::array>(obj))
    return "dtype=" + py::str(py::reinterpret_borrow<py::array>(obj).dtype()).cast<std::string>();
  return "type=" + py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

template <class T>
bool is_array_of(py::handle obj) {
  return py::isinstance<py::array_t<T>>(obj);
}

// Any float array (float16 included) can be converted; ints, objects, lists cannot.
void require_float_array(const char* op, const char* name, py::handle obj) {
  if (py::isinstance<py::array>(obj) &&
      py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'f')
    return;
  throw py::type_error(tag(op) + name + " " + describe(obj) +
                       " is not supported; expected a float numpy.ndarray");
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// Element strides of `a` if its memory is a permutation of one dense block (size-1 axes
// ignored; they get the stride row-major order would give them), else nullopt.
std::optional<Strides> dense_strides(const py::array& a) {
  const Shape shape = shape_of(a);
  const auto rank = static_cast<int64_t>(shape.size());
  const int64_t item = a.itemsize();
  if (normkit::numel(shape) == 0) return normkit::contiguous_strides(shape);
  if (reinterpret_cast<uintptr_t>(a.data()) % static_cast<uintptr_t>(item) != 0)
    return std::nullopt;
  std::vector<int64_t> axes;
  Strides st(shape.size(), 0);
  for (int64_t i = 0; i < rank; ++i) {
    if (shape[i] == 1) continue;
    const int64_t b = a.strides(i);
    if (b <= 0 || b % item != 0) return std::nullopt;
    st[i] = b / item;
    axes.push_back(i);
  }
  std::sort(axes.begin(), axes.end(), [&](int64_t p, int64_t q) { return st[p] < st[q]; });
  int64_t expected = 1;
  for (int64_t i : axes) {
    if (st[i] != expected) return std::nullopt;
    expected *= shape[i];
  }
  for (int64_t i = rank - 1; i >= 0; --i)
    if (shape[i] == 1) st[i] = i + 1 < rank ? st[i + 1] * shape[i + 1] : 1;
  return st;
}

// Dense strides that keep the axis order of `a` (by decreasing |stride|).
Strides dense_like_order(const py::array& a) {
  const Shape shape = shape_of(a);
  std::vector<int64_t> axes(shape.size());
  std::iota(axes.begin(), axes.end(), 0);
  auto mag = [&](int64_t i) { return std::abs(static_cast<int64_t>(a.strides(i))); };
  std::stable_sort(axes.begin(), axes.end(), [&](int64_t p, int64_t q) { return mag(p) > mag(q); });
  Strides st(shape.size());
  int64_t expected = 1;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
    st[*it] = expected;
    expected *= shape[*it];
  }
  return st;
}

template <class T>
py::array_t<T> empty_with(const Shape& shape, const Strides& strides) {
  std::vector<py::ssize_t> sh(shape.begin(), shape.end()), bytes;
  for (int64_t s : strides) bytes.push_back(static_cast<py::ssize_t>(s * sizeof(T)));
  return py::array_t<T>(sh, bytes);
}

void copy_into(py::handle dst, py::handle src) {
  py::module_::import("numpy").attr("copyto")(dst, src, py::arg("casting") = "unsafe");
}

// An input array of dtype T, viewed in place when dense-permuted, else copied into a
// dense array with the same axis order. `keep` owns whatever the view points at.
template <class T>
struct Input {
  py::object keep;
  TensorView<const T> view;
};

template <class T>
Input<T> as_input(py::handle obj) {
  auto a = py::reinterpret_borrow<py::array>(obj);
  const Shape shape = shape_of(a);
  if (auto st = dense_strides(a))
    return {a, TensorView<const T>(static_cast<const T*>(a.data()), shape, *st)};
  const Strides st = dense_like_order(a);
  auto copy = empty_with<T>(shape, st);
  copy_into(copy, a);
  return {copy, TensorView<const T>(copy.data(), shape, st)};
}

// An array shaped like x (a gradient) in x's exact layout: in place when it already is,
// else converted into a fresh array with x's strides.
template <class T>
Input<T> like_input(const char* op, const char* name, py::handle obj,
                    const TensorView<const T>& x) {
  require_float_array(op, name, obj);
  auto a = py::reinterpret_borrow<py::array>(obj);
  const Shape shape = shape_of(a);
  if (shape != x.shape)
    throw py::value_error(tag(op) + name + " shape=" + normkit::shape_str(shape) +
                          " does not match input shape=" + normkit::shape_str(x.shape));
  if (is_array_of<T>(a))
    if (auto st = dense_strides(a)) {
      bool same = true;
      for (size_t i = 0; i < shape.size(); ++i) same &= shape[i] == 1 || (*st)[i] == x.strides[i];
      if (same) return {a, TensorView<const T>(static_cast<const T*>(a.data()), shape, x.strides)};
    }
  auto copy = empty_with<T>(x.shape, x.strides);
  copy_into(copy, a);
  return {copy, TensorView<const T>(copy.data(), shape, x.strides)};
}

template <class T>
struct Output {
  py::array_t<T> array;
  TensorView<T> view;
};

template <class T>
Output<T> output_like(const TensorView<const T>& x) {
  auto y = empty_with<T>(x.shape, x.strides);
  return {y, TensorView<T>(y.mutable_data(), x.shape, x.strides)};
}

// weight / bias / g: None -> an empty span (absent); a float array (any shape, any float
// dtype) -> a contiguous T view or copy. The C++ call checks the element count.
template <class T>
struct Param {
  py::object keep;
  std::span<const T> span;
  Shape shape;
  py::object dtype;  // the caller's dtype: gradients are returned in it
  // The gradient of this parameter: None when absent, else an array shaped like it.
  std::optional<py::array_t<T>> grad() const {
    if (!keep) return std::nullopt;
    return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
  }
  // A computed gradient: for float16 input, a float16 parameter gets a float16 gradient
  // (rounded); otherwise gradients have the compute dtype, as before.
  py::object result(const std::optional<py::array_t<T>>& g, bool half_input) const {
    if (!g) return py::none();
    if (!half_input || !dtype || !py::reinterpret_borrow<py::dtype>(dtype).equal(py::dtype::of<normkit::float16>()))
      return *g;
    return g->attr("astype")(dtype);
  }
};

template <class T>
std::span<T> span_of(std::optional<py::array_t<T>>& a) {
  if (!a) return {};
  return {a->mutable_data(), static_cast<size_t>(a->size())};
}

// allow_empty: a required parameter (weight_norm's g) that may legitimately have 0 elements
// (v.shape[dim] == 0); for the optional ones an empty array would read as "absent".
template <class T>
Param<T> param(const char* op, const char* name, py::handle obj, bool allow_empty = false) {
  if (obj.is_none()) return {};
  require_float_array(op, name, obj);
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::error_already_set();
  if (a.size() == 0 && !allow_empty)
    throw py::value_error(tag(op) + name + " has 0 elements; pass None for no " + name);
  return {a, std::span<const T>(a.data(), static_cast<size_t>(a.size())), shape_of(a),
          py::reinterpret_borrow<py::array>(obj).dtype()};
}

// running_mean / running_var. When `updated`, the caller's array is written in place, so it
// must be a writable contiguous array of the input's dtype; otherwise it is only read.
template <class T>
struct Running {
  py::object keep;
  std::span<T> span;
  py::object writeback;  // a float16 array updated through a float32 copy: written back rounded
  void finish() const {
    if (writeback) copy_into(writeback, keep);
  }
};

// half_input: the input is float16, whose running statistics may be float32 (T) or float16.
template <class T>
Running<T> running(const char* op, const char* name, py::handle obj, bool updated,
                   bool half_input = false) {
  if (obj.is_none()) return {};
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(tag(op) + name + " " + describe(obj) +
                         " is not supported; expected a float numpy.ndarray");
  auto a = py::reinterpret_borrow<py::array>(obj);
  const bool exact = is_array_of<T>(a) && (a.flags() & py::array::c_style) && a.writeable();
  const bool half_stats = half_input && is_array_of<normkit::float16>(a);
  if (updated && !is_array_of<T>(a) && !half_stats)
    throw py::type_error(tag(op) + name + " " + describe(a) + " does not match input dtype=" +
                         py::str(py::dtype::of<T>()).cast<std::string>() +
                         " (running statistics are updated in place)");
  if (updated && !a.writeable())
    throw py::value_error(tag(op) + name +
                          " is read-only; running statistics are updated in place");
  if (updated && !(a.flags() & py::array::c_style))
    throw py::value_error(tag(op) + name +
                          " is not contiguous; running statistics are updated in place");
  if (!updated && a.dtype().kind() != 'f')
    throw py::type_error(tag(op) + name + " " + describe(a) +
                         " is not supported; expected a float numpy.ndarray");
  if (a.size() == 0)
    throw py::value_error(tag(op) + name + " has 0 elements; pass None for no " + name);
  const auto n = static_cast<size_t>(a.size());
  if (exact) return {a, std::span<T>(static_cast<T*>(a.mutable_data()), n)};
  // Read only (or float16 updated via float32): hand the engine a private copy so the
  // caller's array cannot change unless the call succeeds.
  auto copy = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!copy) throw py::error_already_set();
  auto owned = py::array_t<T>(copy.size());
  std::copy(copy.data(), copy.data() + copy.size(), owned.mutable_data());
  return {owned, std::span<T>(owned.mutable_data(), n), updated && half_stats ? py::object(a) : py::object()};
}

// Calls f(T{}) with T = float or double (and normkit::float16 when Half), the dtype of
// `input`; else TypeError.
template <bool Half = false, class F>
py::object dispatch(const char* op, const char* name, py::handle input, F&& f) {
  if (is_array_of<float>(input)) return f(float{});
  if (is_array_of<double>(input)) return f(double{});
  if constexpr (Half) {
    if (is_array_of<normkit::float16>(input)) return f(normkit::float16{});
    throw py::type_error(tag(op) + name + " " + describe(input) +
                         " is not supported; expected a float16, float32 or float64 numpy.ndarray");
  }
  throw py::type_error(tag(op) + name + " " + describe(input) +
                       " is not supported; expected a float32 or float64 numpy.ndarray");
}

// Scalars are converted here, not by pybind11, so that a wrong type is a TypeError and a value
// beyond int64 / double a ValueError, both starting with "[op]" (pybind11's own casts would
// give a bare TypeError or "Unable to cast Python instance" RuntimeError).
std::string short_str(py::handle obj) {
  std::string s = py::str(obj).cast<std::string>();
  return s.size() <= 40 ? s : s.substr(0, 20) + "..." + s.substr(s.size() - 10) + " (" + std::to_string(s.size()) + " digits)";
}

int64_t int_arg(const char* op, const char* name, py::handle obj) {
  if (!py::isinstance<py::int_>(obj) && !py::hasattr(obj, "__index__"))
    throw py::type_error(tag(op) + name + " " + describe(obj) + " is not an int");
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0)
    throw py::value_error(tag(op) + name + "=" + short_str(index) + " does not fit in int64");
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<int64_t>(v);
}

double real_arg(const char* op, const char* name, py::handle obj) {
  const bool number = py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj) ||
                      ((py::hasattr(obj, "__float__") || py::hasattr(obj, "__index__")) &&
                       !py::isinstance<py::str>(obj) && !py::isinstance<py::bytes>(obj));
  if (!number) throw py::type_error(tag(op) + name + " " + describe(obj) + " is not a real number");
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
    if (!overflow) throw py::error_already_set();
    PyErr_Clear();
    throw py::value_error(tag(op) + name + "=" + short_str(obj) + " is out of the range of a double");
  }
  return v;
}

std::optional<double> opt_real_arg(const char* op, const char* name, py::handle obj) {
  if (obj.is_none()) return std::nullopt;
  return real_arg(op, name, obj);
}

std::vector<int64_t> int_list(const char* op, const char* name, py::handle obj) {
  if (py::isinstance<py::int_>(obj) || (py::hasattr(obj, "__index__") && !py::isinstance<py::sequence>(obj)))
    return {int_arg(op, name, obj)};  // an int, or an integer scalar such as numpy.int64
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw py::type_error(tag(op) + name + " " + describe(obj) +
                         " is not an int or a sequence of ints");
  std::vector<int64_t> out;
  for (py::handle h : py::reinterpret_borrow<py::sequence>(obj)) {
    if (!py::isinstance<py::int_>(h) && !py::hasattr(h, "__index__"))
      throw py::type_error(tag(op) + name + " element " + describe(h) + " is not an int");
    out.push_back(int_arg(op, name, h));
  }
  return out;
}

py::object none_or(const std::optional<py::object>& o) { return o ? *o : py::none(); }

// The two shapes every binding takes. Forward: allocate y like x, run f(y) without the GIL.
// Backward: bring grad_output to x's layout, allocate dx and a gradient per present
// parameter, run f(dy, dx, dweight, dbias) without the GIL, return the tuple.
template <class T, class F>
py::object run_forward(const Input<T>& x, F&& f) {
  auto y = output_like(x.view);
  {
    py::gil_scoped_release nogil;
    f(y.view);
  }
  return y.array;
}

template <class T, class P, class F>
py::object run_backward(const char* op, py::handle grad_output, const Input<T>& x,
                        const Param<P>& w, const Param<P>* b, F&& f) {
  auto dy = like_input<T>(op, "grad_output", grad_output, x.view);
  auto dx = output_like(x.view);
  auto dw = w.grad();
  auto db = b ? b->grad() : std::nullopt;
  {
    py::gil_scoped_release nogil;
    f(dy.view, dx.view, span_of(dw), span_of(db));
  }
  constexpr bool half = normkit::is_half_v<T>;
  if (!b) return py::make_tuple(dx.array, w.result(dw, half));
  return py::make_tuple(dx.array, w.result(dw, half), b->result(db, half));
}

// ---- batch_norm ----------------------------------------------------------------------------
py::object batch_norm(bool backward, py::object grad_output, py::object input,
                      py::object running_mean, py::object running_var, py::object weight,
                      py::object bias, bool training, py::object momentum_obj, py::object eps_obj,
                      bool skip_nonfinite_update = false) {
  const char* op = backward ? "batch_norm_backward" : "batch_norm";
  const double momentum = real_arg(op, "momentum", momentum_obj);
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight), b = param<P>(op, "bias", bias);
    auto rm = running<P>(op, "running_mean", running_mean, training && !backward, normkit::is_half_v<T>);
    auto rv = running<P>(op, "running_var", running_var, training && !backward, normkit::is_half_v<T>);
    normkit::BatchNormArgs<T, P> args{w.span, b.span, rm.span, rv.span, training, momentum, eps};
    bool skipped = false;
    args.skip_nonfinite_update = skip_nonfinite_update, args.update_skipped = &skipped;
    if (!backward) {
      py::object y = run_forward(
          x, [&](TensorView<T> y) { normkit::batch_norm_forward<T>(x.view, y, args); });
      rm.finish(), rv.finish();
      return skip_nonfinite_update ? py::object(py::make_tuple(y, skipped)) : y;
    }
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::batch_norm_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

// ---- instance_norm -------------------------------------------------------------------------
py::object instance_norm(bool backward, py::object grad_output, py::object input,
                         py::object running_mean, py::object running_var, py::object weight,
                         py::object bias, bool use_input_stats, py::object momentum_obj, py::object eps_obj,
                         bool skip_nonfinite_update = false) {
  const char* op = backward ? "instance_norm_backward" : "instance_norm";
  const double momentum = real_arg(op, "momentum", momentum_obj);
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight), b = param<P>(op, "bias", bias);
    auto rm = running<P>(op, "running_mean", running_mean, use_input_stats && !backward, normkit::is_half_v<T>);
    auto rv = running<P>(op, "running_var", running_var, use_input_stats && !backward, normkit::is_half_v<T>);
    normkit::InstanceNormArgs<T, P> args{w.span,          b.span,   rm.span, rv.span,
                                      use_input_stats, momentum, eps};
    bool skipped = false;
    args.skip_nonfinite_update = skip_nonfinite_update, args.update_skipped = &skipped;
    if (!backward) {
      py::object y = run_forward(
          x, [&](TensorView<T> y) { normkit::instance_norm_forward<T>(x.view, y, args); });
      rm.finish(), rv.finish();
      return skip_nonfinite_update ? py::object(py::make_tuple(y, skipped)) : y;
    }
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::instance_norm_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

// ---- group_norm ----------------------------------------------------------------------------
py::object group_norm(bool backward, py::object grad_output, py::object input, py::object num_groups_obj,
                      py::object weight, py::object bias, py::object eps_obj) {
  const char* op = backward ? "group_norm_backward" : "group_norm";
  const int64_t num_groups = int_arg(op, "num_groups", num_groups_obj);
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight), b = param<P>(op, "bias", bias);
    const normkit::GroupNormArgs<T, P> args{num_groups, w.span, b.span, eps};
    if (!backward)
      return run_forward(x,
                         [&](TensorView<T> y) { normkit::group_norm_forward<T>(x.view, y, args); });
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::group_norm_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

// ---- layer_norm ----------------------------------------------------------------------------
py::object layer_norm(bool backward, py::object grad_output, py::object input,
                      py::object normalized_shape, py::object weight, py::object bias, py::object eps_obj) {
  const char* op = backward ? "layer_norm_backward" : "layer_norm";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight), b = param<P>(op, "bias", bias);
    const normkit::LayerNormArgs<T, P> args{int_list(op, "normalized_shape", normalized_shape), w.span,
                                         b.span, eps};
    if (!backward)
      return run_forward(x,
                         [&](TensorView<T> y) { normkit::layer_norm_forward<T>(x.view, y, args); });
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::layer_norm_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

// ---- rms_norm ------------------------------------------------------------------------------
normkit::HalfCast parse_cast(const char* op, const std::string& s) {
  if (s == "multiply_then_cast") return normkit::HalfCast::MultiplyThenCast;
  if (s == "normalize_then_cast") return normkit::HalfCast::NormalizeThenCast;
  throw py::value_error(tag(op) + "cast='" + s +
                        "' is not one of 'multiply_then_cast', 'normalize_then_cast'");
}

py::object rms_norm(bool backward, py::object grad_output, py::object input,
                    py::object normalized_shape, py::object weight, py::object eps_obj,
                    bool unit_offset, const std::string& cast = "multiply_then_cast") {
  const char* op = backward ? "rms_norm_backward" : "rms_norm";
  const std::optional<double> eps = opt_real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight);
    const normkit::RMSNormArgs<T, P> args{int_list(op, "normalized_shape", normalized_shape), w.span,
                                       eps, unit_offset, parse_cast(op, cast)};
    if (!backward)
      return run_forward(x,
                         [&](TensorView<T> y) { normkit::rms_norm_forward<T>(x.view, y, args); });
    const Param<P>* no_bias = nullptr;
    return run_backward(op, grad_output, x, w, no_bias, [&](auto dy, auto dx, auto dw, auto) {
      normkit::rms_norm_backward<T>(dy, x.view, dx, args, dw);
    });
  });
}

// ---- weight_norm ---------------------------------------------------------------------------
// return_norms (forward): (w, norms), norms shaped like g, as torch._weight_norm_interface
// returns them; norms (backward): those, so the backward need not take them from v again.
py::object weight_norm(bool backward, py::object grad_output, py::object v, py::object g,
                       py::object dim, bool return_norms = false, py::object norms = py::none()) {
  const char* op = backward ? "weight_norm_backward" : "weight_norm";
  return dispatch<true>(op, "v", v, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(v);
    std::optional<int64_t> d;
    if (!dim.is_none()) {
      if (!py::isinstance<py::int_>(dim))
        throw py::type_error(tag(op) + "dim " + describe(dim) + " is not an int or None");
      d = int_arg(op, "dim", dim);
    }
    if (g.is_none())
      throw py::type_error(tag(op) +
                           "g type=NoneType is not supported; weight_norm needs the magnitudes g");
    auto gg = param<P>(op, "g", g, /*allow_empty=*/true);
    const normkit::WeightNormArgs<T> args{d};
    if (!backward && !return_norms)
      return run_forward(
          x, [&](TensorView<T> w) { normkit::weight_norm_forward<T, P>(x.view, gg.span, w, args); });
    if (!backward) {
      py::array_t<P> n(std::vector<py::ssize_t>(gg.shape.begin(), gg.shape.end()));
      const std::span<P> ns(n.mutable_data(), static_cast<size_t>(n.size()));
      py::object w = run_forward(
          x, [&](TensorView<T> w) { normkit::weight_norm_forward<T, P>(x.view, gg.span, w, args, ns); });
      return py::make_tuple(w, n);
    }
    auto given = param<P>(op, "norms", norms, /*allow_empty=*/true);
    // An empty array is not None: the C++ span would read as "no norms" and take them from v.
    if (!norms.is_none() && given.span.empty() && !gg.span.empty())
      throw py::value_error(tag(op) + "norms has 0 elements, expected " + std::to_string(gg.span.size()) +
                            " (one per slice, shaped like g) or None");
    auto dv = like_input<T>(op, "grad_output", grad_output, x.view);
    auto dx = output_like(x.view);
    auto dg = gg.grad();
    {
      py::gil_scoped_release nogil;
      normkit::weight_norm_backward<T, P>(dv.view, x.view, gg.span, dx.view, span_of(dg), args, given.span);
    }
    return py::make_tuple(dx.array, gg.result(dg, normkit::is_half_v<T>));
  });
}

// ---- normalize (generic) -------------------------------------------------------------------
normkit::Statistic parse_statistic(const char* op, const std::string& s) {
  if (s == "variance") return normkit::Statistic::Variance;
  if (s == "mean_square") return normkit::Statistic::MeanSquare;
  if (s == "l2") return normkit::Statistic::L2Norm;
  throw py::value_error(tag(op) + "statistic='" + s +
                        "' is not one of 'variance', 'mean_square', 'l2'");
}

py::object normalize(bool backward, py::object grad_output, py::object input,
                     py::object reduce_axes, py::object weight, py::object bias,
                     py::object affine_axes, const std::string& statistic, py::object eps_obj) {
  const char* op = backward ? "normalize_backward" : "normalize";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch<true>(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    using P = normkit::compute_t<T>;  // float parameters for float16 input
    auto x = as_input<T>(input);
    auto w = param<P>(op, "weight", weight), b = param<P>(op, "bias", bias);
    const normkit::NormalizeArgs<T, P> args{int_list(op, "reduce_axes", reduce_axes),
                                         int_list(op, "affine_axes", affine_axes),
                                         parse_statistic(op, statistic),
                                         w.span,
                                         b.span,
                                         eps};
    if (!backward)
      return run_forward(x,
                         [&](TensorView<T> y) { normkit::normalize_forward<T>(x.view, y, args); });
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::normalize_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

}  // namespace

void register_extras(py::module_& m);  // the extras section at the end of this file

PYBIND11_MODULE(normkit, m) {
  m.doc() = R"(normkit: the normalization family (BatchNorm, InstanceNorm, GroupNorm, LayerNorm,
RMSNorm, WeightNorm, and a generic normalize over any axes) on one reduction engine.

The functions take the positional order and keyword names of torch.nn.functional and work
on float16 / float32 / float64 NumPy arrays of any strides; results have the input's dtype
(float16: float32 statistics and arithmetic, parameters float16 or float32; NumPy has no
bfloat16, which the C++ API offers). Arrays
whose memory is a permutation of a dense block (e.g. channels-last) are read in place and
the outputs get the same strides. Running statistics are updated in place. Each function
has a `<name>_backward(grad_output, <same arguments>)` twin returning the gradients.
Invalid arguments raise ValueError; unsupported dtypes raise TypeError.)";
  m.attr("__version__") = NORMKIT_VERSION;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const normkit::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  const auto none = py::none();
  // -- batch_norm
  m.def(
      "batch_norm",
      [](py::object input, py::object rm, py::object rv, py::object w, py::object b, bool training,
         py::object momentum, py::object eps, bool skip) {
        return batch_norm(false, py::none(), input, rm, rv, w, b, training, momentum, eps, skip);
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("training") = false, py::arg("momentum") = 0.1,
      py::arg("eps") = 1e-5, py::kw_only(), py::arg("skip_nonfinite_update") = false,
      R"(Batch normalization over (N, C, *): one mean/variance per channel C.

training=True (or running statistics None) normalizes with the batch statistics (biased
variance); running_mean / running_var, if given, are then updated in place:
running = (1 - momentum) * running + momentum * batch, storing the unbiased variance.
training=False with running statistics normalizes with them. Same as
torch.nn.functional.batch_norm.

skip_nonfinite_update=True (keyword only; not in PyTorch) guards the running statistics: a
batch whose mean or variance is NaN/Inf leaves them unchanged, and the call returns the
tuple (output, update_skipped) instead of the output alone.)");
  m.def(
      "batch_norm_backward",
      [](py::object dy, py::object input, py::object rm, py::object rv, py::object w, py::object b,
         bool training, py::object momentum,
         py::object eps) { return batch_norm(true, dy, input, rm, rv, w, b, training, momentum, eps); },
      py::arg("grad_output"), py::arg("input"), py::arg("running_mean"), py::arg("running_var"),
      py::arg("weight") = none, py::arg("bias") = none, py::arg("training") = false,
      py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
      R"(Gradients of batch_norm: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter. Running statistics are read (eval) but never written.)");
  // -- instance_norm
  m.def(
      "instance_norm",
      [](py::object input, py::object rm, py::object rv, py::object w, py::object b,
         bool use_input_stats, py::object momentum, py::object eps, bool skip) {
        return instance_norm(false, py::none(), input, rm, rv, w, b, use_input_stats, momentum,
                             eps, skip);
      },
      py::arg("input"), py::arg("running_mean") = none, py::arg("running_var") = none,
      py::arg("weight") = none, py::arg("bias") = none, py::arg("use_input_stats") = true,
      py::arg("momentum") = 0.1, py::arg("eps") = 1e-5, py::kw_only(),
      py::arg("skip_nonfinite_update") = false,
      R"(Instance normalization over (N, C, *): one mean/variance per (n, c) over the spatial dims.

With use_input_stats=True the running statistics, if given, are updated in place with the
batch average of the per-instance statistics; with use_input_stats=False they are used to
normalize. Same as torch.nn.functional.instance_norm.

skip_nonfinite_update=True (keyword only; not in PyTorch): as in batch_norm, a batch with a
NaN/Inf statistic leaves the running statistics unchanged, and the call returns
(output, update_skipped).)");
  m.def(
      "instance_norm_backward",
      [](py::object dy, py::object input, py::object rm, py::object rv, py::object w, py::object b,
         bool use_input_stats, py::object momentum, py::object eps) {
        return instance_norm(true, dy, input, rm, rv, w, b, use_input_stats, momentum, eps);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("running_mean") = none,
      py::arg("running_var") = none, py::arg("weight") = none, py::arg("bias") = none,
      py::arg("use_input_stats") = true, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
      R"(Gradients of instance_norm: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter. Running statistics are never written.)");
  // -- group_norm
  m.def(
      "group_norm",
      [](py::object input, py::object g, py::object w, py::object b, py::object eps) {
        return group_norm(false, py::none(), input, g, w, b, eps);
      },
      py::arg("input"), py::arg("num_groups"), py::arg("weight") = none, py::arg("bias") = none,
      py::arg("eps") = 1e-5,
      R"(Group normalization over (N, C, *): one mean/variance per (n, group) over C/num_groups
channels and the spatial dims; weight and bias are per channel. num_groups must divide C.
Same as torch.nn.functional.group_norm.)");
  m.def(
      "group_norm_backward",
      [](py::object dy, py::object input, py::object g, py::object w, py::object b, py::object eps) {
        return group_norm(true, dy, input, g, w, b, eps);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("num_groups"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Gradients of group_norm: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter.)");
  // -- layer_norm
  m.def(
      "layer_norm",
      [](py::object input, py::object ns, py::object w, py::object b, py::object eps) {
        return layer_norm(false, py::none(), input, ns, w, b, eps);
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Layer normalization over the trailing dims given by normalized_shape (an int or a
sequence); weight and bias are optional, each with prod(normalized_shape) elements.
Same as torch.nn.functional.layer_norm.)");
  m.def(
      "layer_norm_backward",
      [](py::object dy, py::object input, py::object ns, py::object w, py::object b, py::object eps) {
        return layer_norm(true, dy, input, ns, w, b, eps);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("normalized_shape"),
      py::arg("weight") = none, py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Gradients of layer_norm: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter.)");
  // -- rms_norm
  m.def(
      "rms_norm",
      [](py::object input, py::object ns, py::object w, py::object eps,
         bool unit_offset, const std::string& cast) {
        return rms_norm(false, py::none(), input, ns, w, eps, unit_offset, cast);
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = none,
      py::arg("eps") = none, py::kw_only(), py::arg("unit_offset") = false,
      py::arg("cast") = "multiply_then_cast",
      R"(RMS normalization over the trailing dims: y = x / sqrt(mean(x^2) + eps) * weight.

eps=None uses the machine epsilon of the input dtype (float32's for float16 input, as
torch.nn.functional.rms_norm). unit_offset=True gives the Gemma form, multiplying by
(1 + weight). For float16 input, cast picks where the result is rounded to float16:
"multiply_then_cast" (default; torch.nn.functional.rms_norm, Gemma) rounds x*rstd*weight
once; "normalize_then_cast" (LLaMA) rounds x*rstd to float16 before multiplying by weight.)");
  m.def(
      "rms_norm_backward",
      [](py::object dy, py::object input, py::object ns, py::object w, py::object eps,
         bool unit_offset, const std::string& cast) {
        return rms_norm(true, dy, input, ns, w, eps, unit_offset, cast);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("normalized_shape"),
      py::arg("weight") = none, py::arg("eps") = none, py::kw_only(),
      py::arg("unit_offset") = false, py::arg("cast") = "multiply_then_cast",
      R"(Gradients of rms_norm: returns (grad_input, grad_weight), None for an absent weight.)");
  // -- weight_norm
  m.def(
      "weight_norm",
      [](py::object v, py::object g, py::object dim, bool return_norms) {
        return weight_norm(false, py::none(), v, g, dim, return_norms);
      },
      py::arg("v"), py::arg("g"), py::arg("dim") = 0, py::kw_only(), py::arg("return_norms") = false,
      R"(Weight normalization: w = g * v / ||v||, the norm over every dim of v except `dim`.

g has v.shape[dim] elements, in any shape (e.g. (out, 1, 1, 1) as PyTorch keeps it).
dim=None or -1 takes the norm of the whole tensor (g has one element). Same as
torch._weight_norm(v, g, dim). return_norms=True returns (w, norms), norms ||v|| shaped
like g (as torch._weight_norm_interface), for weight_norm_backward(..., norms=norms).)");
  m.def(
      "weight_norm_backward",
      [](py::object grad_output, py::object v, py::object g, py::object dim, py::object norms) {
        return weight_norm(true, grad_output, v, g, dim, false, norms);
      },
      py::arg("grad_output"), py::arg("v"), py::arg("g"), py::arg("dim") = 0, py::kw_only(),
      py::arg("norms") = py::none(),
      R"(Gradients of weight_norm: returns (grad_v, grad_g), grad_g shaped like g.

grad_output is the gradient with respect to weight_norm's output w. norms: the forward's
||v|| (weight_norm(..., return_norms=True)), or None to take them from v again.)");
  // -- normalize
  m.def(
      "normalize",
      [](py::object input, py::object reduce, py::object w, py::object b, py::object affine,
         const std::string& statistic, py::object eps) {
        return normalize(false, py::none(), input, reduce, w, b, affine, statistic, eps);
      },
      py::arg("input"), py::arg("reduce_axes"), py::arg("weight") = none, py::arg("bias") = none,
      py::arg("affine_axes") = py::tuple(), py::arg("statistic") = "variance",
      py::arg("eps") = 1e-5,
      R"(Normalize over any axes: one statistic per combination of the other axes.

statistic: "variance"     y = (x - mean) / sqrt(var + eps)
           "mean_square"  y = x / sqrt(mean(x^2) + eps)
           "l2"           y = x / max(||x||, eps)
weight and bias vary along affine_axes and have prod(input.shape[a] for a in affine_axes)
elements.)");
  m.def(
      "normalize_backward",
      [](py::object dy, py::object input, py::object reduce, py::object w, py::object b,
         py::object affine, const std::string& statistic,
         py::object eps) { return normalize(true, dy, input, reduce, w, b, affine, statistic, eps); },
      py::arg("grad_output"), py::arg("input"), py::arg("reduce_axes"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("affine_axes") = py::tuple(),
      py::arg("statistic") = "variance", py::arg("eps") = 1e-5,
      R"(Gradients of normalize: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter.)");
  m.def("set_num_threads", &normkit::set_num_threads, py::arg("n"),
        "Threads the engine may use (OpenMP). Results are bitwise identical for any count.");
  m.def("get_num_threads", &normkit::get_num_threads, "Threads the engine may use.");
  register_extras(m);
}

// =============================================================================================
// ---- extras (normkit/extras.hpp): fused add + norm, GroupNorm + SiLU, BatchNorm folding,
// FrozenBatchNorm, AdaIN. Same conventions as above: float32/float64 dispatch on the first
// array, in-place views of dense-permuted arrays, outputs in the input's layout, GIL released.
// =============================================================================================
namespace {

// add_rms_norm / add_layer_norm: returns (y, x + residual), both in x's layout.
template <class T, class Call>
py::object add_norm_forward(const char* op, py::handle input, py::handle residual, Call&& call) {
  auto x = as_input<T>(input);
  auto r = like_input<T>(op, "residual", residual, x.view);
  auto y = output_like(x.view), s = output_like(x.view);
  {
    py::gil_scoped_release nogil;
    call(x.view, r.view, y.view, s.view);
  }
  return py::make_tuple(y.array, s.array);
}

// Backward of the fused ops: sum is the forward's second output; grad_sum may be None.
template <class T, class Call>
py::object add_norm_backward(const char* op, py::handle grad_output, py::handle grad_sum,
                             py::handle sum, const Param<T>& w, const Param<T>* b, Call&& call) {
  auto s = as_input<T>(sum);
  auto dy = like_input<T>(op, "grad_output", grad_output, s.view);
  std::optional<Input<T>> ds;
  if (!grad_sum.is_none()) ds = like_input<T>(op, "grad_sum", grad_sum, s.view);
  auto dx = output_like(s.view);
  auto dw = w.grad();
  auto db = b ? b->grad() : std::nullopt;
  {
    py::gil_scoped_release nogil;
    call(dy.view, ds ? ds->view : TensorView<const T>(), s.view, dx.view, span_of(dw), span_of(db));
  }
  if (!b) return py::make_tuple(dx.array, none_or(dw));
  return py::make_tuple(dx.array, none_or(dw), none_or(db));
}

py::object add_rms_norm(bool backward, py::object grad_output, py::object grad_sum, py::object input,
                        py::object residual, py::object normalized_shape, py::object weight,
                        py::object eps_obj, bool unit_offset) {
  const char* op = backward ? "add_rms_norm_backward" : "add_rms_norm";
  const std::optional<double> eps = opt_real_arg(op, "eps", eps_obj);
  return dispatch(op, backward ? "sum" : "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto w = param<T>(op, "weight", weight);
    const normkit::RMSNormArgs<T> args{int_list(op, "normalized_shape", normalized_shape), w.span,
                                       eps, unit_offset};
    if (!backward)
      return add_norm_forward<T>(op, input, residual, [&](auto x, auto r, auto y, auto s) {
        normkit::add_rms_norm_forward<T>(x, r, y, s, args);
      });
    const Param<T>* no_bias = nullptr;
    return add_norm_backward<T>(op, grad_output, grad_sum, input, w, no_bias,
                                [&](auto dy, auto ds, auto s, auto dx, auto dw, auto) {
                                  normkit::add_rms_norm_backward<T>(dy, ds, s, dx, args, dw);
                                });
  });
}

py::object add_layer_norm(bool backward, py::object grad_output, py::object grad_sum,
                          py::object input, py::object residual, py::object normalized_shape,
                          py::object weight, py::object bias, py::object eps_obj) {
  const char* op = backward ? "add_layer_norm_backward" : "add_layer_norm";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch(op, backward ? "sum" : "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto w = param<T>(op, "weight", weight), b = param<T>(op, "bias", bias);
    const normkit::LayerNormArgs<T> args{int_list(op, "normalized_shape", normalized_shape), w.span,
                                         b.span, eps};
    if (!backward)
      return add_norm_forward<T>(op, input, residual, [&](auto x, auto r, auto y, auto s) {
        normkit::add_layer_norm_forward<T>(x, r, y, s, args);
      });
    return add_norm_backward<T>(op, grad_output, grad_sum, input, w, &b,
                                [&](auto dy, auto ds, auto s, auto dx, auto dw, auto db) {
                                  normkit::add_layer_norm_backward<T>(dy, ds, s, dx, args, dw, db);
                                });
  });
}

py::object group_norm_silu(bool backward, py::object grad_output, py::object input,
                           py::object num_groups_obj, py::object weight, py::object bias, py::object eps_obj) {
  const char* op = backward ? "group_norm_silu_backward" : "group_norm_silu";
  const double eps = real_arg(op, "eps", eps_obj);
  const int64_t num_groups = int_arg(op, "num_groups", num_groups_obj);
  return dispatch(op, "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto x = as_input<T>(input);
    auto w = param<T>(op, "weight", weight), b = param<T>(op, "bias", bias);
    const normkit::GroupNormArgs<T> args{num_groups, w.span, b.span, eps};
    if (!backward)
      return run_forward(
          x, [&](TensorView<T> y) { normkit::group_norm_silu_forward<T>(x.view, y, args); });
    return run_backward(op, grad_output, x, w, &b, [&](auto dy, auto dx, auto dw, auto db) {
      normkit::group_norm_silu_backward<T>(dy, x.view, dx, args, dw, db);
    });
  });
}

py::object fold_batch_norm(py::object weight, py::object bias, py::object running_mean,
                           py::object running_var, py::object bn_weight, py::object bn_bias,
                           py::object eps_obj, bool transpose) {
  const char* op = "fold_batch_norm";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch(op, "weight", weight, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto w = as_input<T>(weight);
    auto b = param<T>(op, "bias", bias), rm = param<T>(op, "running_mean", running_mean),
         rv = param<T>(op, "running_var", running_var), g = param<T>(op, "bn_weight", bn_weight),
         beta = param<T>(op, "bn_bias", bn_bias);
    normkit::FoldedWeights<T> f;
    {
      py::gil_scoped_release nogil;
      f = normkit::fold_batch_norm<T>(w.view, b.span, rm.span, rv.span, g.span, beta.span, eps,
                                      transpose);
    }
    std::vector<py::ssize_t> shape(w.view.shape.begin(), w.view.shape.end());
    py::array_t<T> w_out(shape), b_out(static_cast<py::ssize_t>(f.bias.size()));
    std::copy(f.weight.begin(), f.weight.end(), w_out.mutable_data());
    std::copy(f.bias.begin(), f.bias.end(), b_out.mutable_data());
    return py::make_tuple(w_out, b_out);
  });
}

// A FrozenBatchNorm layer holding copies of the given buffers (None: the layer's defaults).
template <class T>
normkit::FrozenBatchNorm<T> frozen_layer(const char* op, const TensorView<const T>& x,
                                         py::object rm, py::object rv, py::object w, py::object b,
                                         double eps) {
  if (x.dim() < 2)
    throw py::value_error(tag(op) + "expected input of shape (N, C, *), got shape " +
                          normkit::shape_str(x.shape));
  normkit::FrozenBatchNorm<T> f(x.shape[1], eps);
  auto set = [&](std::vector<T>& dst, const char* name, py::object obj) {
    const auto p = param<T>(op, name, obj);
    if (p.keep) dst.assign(p.span.begin(), p.span.end());
  };
  set(f.running_mean, "running_mean", rm);
  set(f.running_var, "running_var", rv);
  set(f.weight, "weight", w);
  set(f.bias, "bias", b);
  return f;
}

py::object frozen_batch_norm(bool backward, py::object input, py::object rm, py::object rv,
                             py::object w, py::object b, py::object eps_obj) {
  const char* op = backward ? "frozen_batch_norm_backward" : "frozen_batch_norm";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch(op, backward ? "grad_output" : "input", input, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto x = as_input<T>(input);
    const auto f = frozen_layer<T>(op, x.view, rm, rv, w, b, eps);
    return run_forward(x, [&](TensorView<T> y) {
      if (backward)
        f.backward(x.view, y);
      else
        f.forward(x.view, y);
    });
  });
}

py::object adain(bool backward, py::object grad_output, py::object content, py::object style,
                 py::object eps_obj) {
  const char* op = backward ? "adain_backward" : "adain";
  const double eps = real_arg(op, "eps", eps_obj);
  return dispatch(op, "content", content, [&](auto tag_value) -> py::object {
    using T = decltype(tag_value);
    auto c = as_input<T>(content);
    require_float_array(op, "style", style);
    auto s = py::isinstance<py::array_t<T>>(style)
                 ? as_input<T>(style)
                 : as_input<T>(py::array_t<T, py::array::forcecast>::ensure(style));
    if (!backward)
      return run_forward(c, [&](TensorView<T> y) { normkit::adain_forward<T>(c.view, s.view, y, eps); });
    auto dy = like_input<T>(op, "grad_output", grad_output, c.view);
    auto dc = output_like(c.view);
    auto ds = output_like(s.view);
    {
      py::gil_scoped_release nogil;
      normkit::adain_backward<T>(dy.view, c.view, s.view, dc.view, ds.view, eps);
    }
    return py::make_tuple(dc.array, ds.array);
  });
}

}  // namespace

void register_extras(py::module_& m) {
  const auto none = py::none();
  m.def(
      "add_rms_norm",
      [](py::object input, py::object residual, py::object ns, py::object w,
         py::object eps, bool unit_offset) {
        return add_rms_norm(false, py::none(), py::none(), input, residual, ns, w, eps, unit_offset);
      },
      py::arg("input"), py::arg("residual"), py::arg("normalized_shape"), py::arg("weight") = none,
      py::arg("eps") = none, py::kw_only(), py::arg("unit_offset") = false,
      R"(Fused residual add + RMS normalization (vLLM's fused_add_rms_norm).

Returns (y, sum) with sum = input + residual and y = rms_norm(sum, normalized_shape, weight,
eps): the sum is written once and normalized while in cache. eps=None: machine epsilon of the
dtype; unit_offset=True: the Gemma (1 + weight) form.)");
  m.def(
      "add_rms_norm_backward",
      [](py::object dy, py::object dsum, py::object sum, py::object ns, py::object w,
         py::object eps, bool unit_offset) {
        return add_rms_norm(true, dy, dsum, sum, py::none(), ns, w, eps, unit_offset);
      },
      py::arg("grad_output"), py::arg("grad_sum"), py::arg("sum"), py::arg("normalized_shape"),
      py::arg("weight") = none, py::arg("eps") = none, py::kw_only(),
      py::arg("unit_offset") = false,
      R"(Gradients of add_rms_norm given grad_output (of y) and grad_sum (of sum; None = 0),
at the forward's `sum`: returns (grad_input, grad_weight); grad_input is also the gradient of
residual.)");
  m.def(
      "add_layer_norm",
      [](py::object input, py::object residual, py::object ns, py::object w, py::object b,
         py::object eps) {
        return add_layer_norm(false, py::none(), py::none(), input, residual, ns, w, b, eps);
      },
      py::arg("input"), py::arg("residual"), py::arg("normalized_shape"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Fused residual add + layer normalization: returns (y, sum) with sum = input + residual
and y = layer_norm(sum, normalized_shape, weight, bias, eps).)");
  m.def(
      "add_layer_norm_backward",
      [](py::object dy, py::object dsum, py::object sum, py::object ns, py::object w, py::object b,
         py::object eps) { return add_layer_norm(true, dy, dsum, sum, py::none(), ns, w, b, eps); },
      py::arg("grad_output"), py::arg("grad_sum"), py::arg("sum"), py::arg("normalized_shape"),
      py::arg("weight") = none, py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Gradients of add_layer_norm given grad_output and grad_sum (None = 0), at the forward's
`sum`: returns (grad_input, grad_weight, grad_bias), None for an absent parameter.)");
  m.def(
      "group_norm_silu",
      [](py::object input, py::object g, py::object w, py::object b, py::object eps) {
        return group_norm_silu(false, py::none(), input, g, w, b, eps);
      },
      py::arg("input"), py::arg("num_groups"), py::arg("weight") = none, py::arg("bias") = none,
      py::arg("eps") = 1e-5,
      R"(Fused silu(group_norm(input, num_groups, weight, bias, eps)), silu(z) = z * sigmoid(z):
the GroupNorm + SiLU that opens diffusion U-Net blocks, one trip through memory.)");
  m.def(
      "group_norm_silu_backward",
      [](py::object dy, py::object input, py::object g, py::object w, py::object b, py::object eps) {
        return group_norm_silu(true, dy, input, g, w, b, eps);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("num_groups"), py::arg("weight") = none,
      py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Gradients of group_norm_silu: returns (grad_input, grad_weight, grad_bias), None for an
absent parameter.)");
  m.def("fold_batch_norm", &fold_batch_norm, py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("bn_weight") = none,
        py::arg("bn_bias") = none, py::arg("eps") = 1e-5, py::arg("transpose") = false,
        R"(Folds an eval-mode BatchNorm into the conv/linear layer before it.

Returns (weight', bias'): weight' = weight * g / sqrt(v + eps) along the output-channel dim
(dim 0; dim 1 with transpose=True, for ConvTranspose), bias' = (bias - m) * g / sqrt(v + eps)
+ beta. bias, bn_weight, bn_bias may be None (0, 1, 0). Same as
torch.nn.utils.fusion.fuse_conv_bn_weights.)");
  m.def(
      "frozen_batch_norm",
      [](py::object input, py::object rm, py::object rv, py::object w, py::object b, py::object eps) {
        return frozen_batch_norm(false, input, rm, rv, w, b, eps);
      },
      py::arg("input"), py::arg("running_mean") = none, py::arg("running_var") = none,
      py::arg("weight") = none, py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(detectron2's FrozenBatchNorm2d for (N, C, *): input * scale + shift per channel with
scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale. None takes the
frozen layer's defaults: running_mean 0, running_var 1 - eps, weight 1, bias 0.)");
  m.def(
      "frozen_batch_norm_backward",
      [](py::object dy, py::object rm, py::object rv, py::object w, py::object b, py::object eps) {
        return frozen_batch_norm(true, dy, rm, rv, w, b, eps);
      },
      py::arg("grad_output"), py::arg("running_mean") = none, py::arg("running_var") = none,
      py::arg("weight") = none, py::arg("bias") = none, py::arg("eps") = 1e-5,
      R"(Gradient of frozen_batch_norm with respect to its input: grad_output * scale.)");
  m.def(
      "adain",
      [](py::object content, py::object style, py::object eps) {
        return adain(false, py::none(), content, style, eps);
      },
      py::arg("content"), py::arg("style"), py::arg("eps") = 1e-5,
      R"(Adaptive instance normalization (Huang & Belongie 2017) over (N, C, *):
(content - mean_c) / sqrt(var_c + eps) * sqrt(var_s + eps) + mean_s per (n, c), with the
biased variances InstanceNorm uses. style may have other spatial dims than content.)");
  m.def(
      "adain_backward",
      [](py::object dy, py::object content, py::object style, py::object eps) {
        return adain(true, dy, content, style, eps);
      },
      py::arg("grad_output"), py::arg("content"), py::arg("style"), py::arg("eps") = 1e-5,
      R"(Gradients of adain: returns (grad_content, grad_style).)");
}
