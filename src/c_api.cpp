// c_api.cpp — the C API (normkit/normkit.h) over the C++ functional API: each entry point
// turns raw pointers + a shape into views and spans, calls one C++ op inside a guard that
// maps exceptions to a status code, and keeps the message in a thread-local string.
#include "normkit/normkit.h"

#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "normkit/normkit.hpp"

namespace {

thread_local std::string g_last_error;

// An error found by the C layer itself (before any C++ op runs).
struct CError {
  int status;
  std::string message;
};

template <class Fn>
int guard(Fn&& fn) {
  try {
    fn();
    g_last_error.clear();
    return NORMKIT_OK;
  } catch (const CError& e) {
    g_last_error = e.message;
    return e.status;
  } catch (const normkit::Error& e) {
    g_last_error = e.what();
    return NORMKIT_ERROR_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    g_last_error = "[normkit] out of memory";
    return NORMKIT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("[normkit] internal error: ") + e.what();
    return NORMKIT_ERROR_INTERNAL;
  } catch (...) {
    g_last_error = "[normkit] internal error: unknown exception";
    return NORMKIT_ERROR_INTERNAL;
  }
}

void require(const char* op, const void* p, const char* name) {
  if (!p) throw CError{NORMKIT_ERROR_NULL_POINTER, std::string("[") + op + "] " + name + " is NULL"};
}

[[noreturn]] void invalid(const char* op, const std::string& msg) {
  throw CError{NORMKIT_ERROR_INVALID_ARGUMENT, std::string("[") + op + "] " + msg};
}

// The shape array as a normkit::Shape; sizes must be >= 0.
normkit::Shape to_shape(const char* op, const int64_t* shape, int rank) {
  if (rank < 0) invalid(op, "rank=" + std::to_string(rank) + " must be >= 0");
  if (rank > 0) require(op, shape, "shape");
  normkit::Shape s(shape, shape + rank);
  for (int i = 0; i < rank; ++i)
    if (s[i] < 0) invalid(op, "shape[" + std::to_string(i) + "]=" + std::to_string(s[i]) + " must be >= 0");
  return s;
}

// A span of n values at p, or the empty span ("absent") when p is NULL.
template <class T>
std::span<T> opt(T* p, int64_t n) {
  return p ? std::span<T>(p, static_cast<size_t>(n)) : std::span<T>{};
}
template <class T>
std::span<T> opt_mut(const T* p, int64_t n) {  // running statistics read by backward only
  return opt(const_cast<T*>(p), n);
}

int64_t channels(const normkit::Shape& s) { return s.size() >= 2 ? s[1] : 0; }

// The trailing normalized_rank dims of s (LayerNorm / RMSNorm's normalized_shape).
normkit::Shape trailing(const char* op, const normkit::Shape& s, int normalized_rank) {
  if (normalized_rank < 1 || normalized_rank > static_cast<int>(s.size()))
    invalid(op, "normalized_rank=" + std::to_string(normalized_rank) + " must lie in [1, rank=" +
                    std::to_string(s.size()) + "]");
  return normkit::Shape(s.end() - normalized_rank, s.end());
}

// g's length for a weight norm over `dim` (-1: the whole tensor); 0 when dim is invalid,
// which the C++ op then reports.
int64_t slices(const normkit::Shape& s, int64_t dim) {
  if (dim == -1) return 1;
  return dim >= 0 && dim < static_cast<int64_t>(s.size()) ? s[static_cast<size_t>(dim)] : 0;
}

std::optional<double> opt_eps(const double* eps) { return eps ? std::optional<double>(*eps) : std::nullopt; }

template <class T>
int batch_norm_forward(const T* x, const int64_t* shape, int rank, const T* weight, const T* bias,
                       T* running_mean, T* running_var, int training, double momentum, double eps, T* y) {
  return guard([&] {
    const char* op = "batch_norm";
    auto s = to_shape(op, shape, rank);
    require(op, x, "x");
    require(op, y, "y");
    const int64_t C = channels(s);
    normkit::BatchNormArgs<T> a{opt(weight, C), opt(bias, C), opt(running_mean, C),
                                opt(running_var, C), training != 0, momentum, eps};
    normkit::batch_norm_forward<T>({x, s}, {y, s}, a);
  });
}

template <class T>
int batch_norm_backward(const T* dy, const T* x, const int64_t* shape, int rank, const T* weight,
                        const T* running_mean, const T* running_var, int training, double eps, T* dx,
                        T* dweight, T* dbias) {
  return guard([&] {
    const char* op = "batch_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dy, "dy");
    require(op, x, "x");
    const int64_t C = channels(s);
    normkit::BatchNormArgs<T> a{opt(weight, C), {}, opt_mut(running_mean, C), opt_mut(running_var, C),
                                training != 0, 0.1, eps};
    normkit::batch_norm_backward<T>({dy, s}, {x, s}, {dx, s}, a, opt(dweight, C), opt(dbias, C));
  });
}

template <class T>
int instance_norm_forward(const T* x, const int64_t* shape, int rank, const T* weight, const T* bias,
                          T* running_mean, T* running_var, int use_input_stats, double momentum,
                          double eps, T* y) {
  return guard([&] {
    const char* op = "instance_norm";
    auto s = to_shape(op, shape, rank);
    require(op, x, "x");
    require(op, y, "y");
    const int64_t C = channels(s);
    normkit::InstanceNormArgs<T> a{opt(weight, C), opt(bias, C), opt(running_mean, C),
                                   opt(running_var, C), use_input_stats != 0, momentum, eps};
    normkit::instance_norm_forward<T>({x, s}, {y, s}, a);
  });
}

template <class T>
int instance_norm_backward(const T* dy, const T* x, const int64_t* shape, int rank, const T* weight,
                           const T* running_mean, const T* running_var, int use_input_stats,
                           double eps, T* dx, T* dweight, T* dbias) {
  return guard([&] {
    const char* op = "instance_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dy, "dy");
    require(op, x, "x");
    const int64_t C = channels(s);
    normkit::InstanceNormArgs<T> a{opt(weight, C), {}, opt_mut(running_mean, C),
                                   opt_mut(running_var, C), use_input_stats != 0, 0.1, eps};
    normkit::instance_norm_backward<T>({dy, s}, {x, s}, {dx, s}, a, opt(dweight, C), opt(dbias, C));
  });
}

template <class T>
int group_norm_forward(const T* x, const int64_t* shape, int rank, int64_t num_groups, const T* weight,
                       const T* bias, double eps, T* y) {
  return guard([&] {
    const char* op = "group_norm";
    auto s = to_shape(op, shape, rank);
    require(op, x, "x");
    require(op, y, "y");
    const int64_t C = channels(s);
    normkit::GroupNormArgs<T> a{num_groups, opt(weight, C), opt(bias, C), eps};
    normkit::group_norm_forward<T>({x, s}, {y, s}, a);
  });
}

template <class T>
int group_norm_backward(const T* dy, const T* x, const int64_t* shape, int rank, int64_t num_groups,
                        const T* weight, double eps, T* dx, T* dweight, T* dbias) {
  return guard([&] {
    const char* op = "group_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dy, "dy");
    require(op, x, "x");
    const int64_t C = channels(s);
    normkit::GroupNormArgs<T> a{num_groups, opt(weight, C), {}, eps};
    normkit::group_norm_backward<T>({dy, s}, {x, s}, {dx, s}, a, opt(dweight, C), opt(dbias, C));
  });
}

template <class T>
int layer_norm_forward(const T* x, const int64_t* shape, int rank, int normalized_rank, const T* weight,
                       const T* bias, double eps, T* y) {
  return guard([&] {
    const char* op = "layer_norm";
    auto s = to_shape(op, shape, rank);
    require(op, x, "x");
    require(op, y, "y");
    auto ns = trailing(op, s, normalized_rank);
    const int64_t D = normkit::numel(ns);
    normkit::LayerNormArgs<T> a{ns, opt(weight, D), opt(bias, D), eps};
    normkit::layer_norm_forward<T>({x, s}, {y, s}, a);
  });
}

template <class T>
int layer_norm_backward(const T* dy, const T* x, const int64_t* shape, int rank, int normalized_rank,
                        const T* weight, double eps, T* dx, T* dweight, T* dbias) {
  return guard([&] {
    const char* op = "layer_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dy, "dy");
    require(op, x, "x");
    auto ns = trailing(op, s, normalized_rank);
    const int64_t D = normkit::numel(ns);
    normkit::LayerNormArgs<T> a{ns, opt(weight, D), {}, eps};
    normkit::layer_norm_backward<T>({dy, s}, {x, s}, {dx, s}, a, opt(dweight, D), opt(dbias, D));
  });
}

template <class T>
int rms_norm_forward(const T* x, const int64_t* shape, int rank, int normalized_rank, const T* weight,
                     const double* eps, int unit_offset, T* y) {
  return guard([&] {
    const char* op = "rms_norm";
    auto s = to_shape(op, shape, rank);
    require(op, x, "x");
    require(op, y, "y");
    auto ns = trailing(op, s, normalized_rank);
    const int64_t D = normkit::numel(ns);
    normkit::RMSNormArgs<T> a{ns, opt(weight, D), opt_eps(eps), unit_offset != 0};
    normkit::rms_norm_forward<T>({x, s}, {y, s}, a);
  });
}

template <class T>
int rms_norm_backward(const T* dy, const T* x, const int64_t* shape, int rank, int normalized_rank,
                      const T* weight, const double* eps, int unit_offset, T* dx, T* dweight) {
  return guard([&] {
    const char* op = "rms_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dy, "dy");
    require(op, x, "x");
    auto ns = trailing(op, s, normalized_rank);
    const int64_t D = normkit::numel(ns);
    normkit::RMSNormArgs<T> a{ns, opt(weight, D), opt_eps(eps), unit_offset != 0};
    normkit::rms_norm_backward<T>({dy, s}, {x, s}, {dx, s}, a, opt(dweight, D));
  });
}

template <class T>
int weight_norm_forward(const T* v, const int64_t* shape, int rank, const T* g, int64_t dim, T* w,
                        T* norms) {
  return guard([&] {
    const char* op = "weight_norm";
    auto s = to_shape(op, shape, rank);
    require(op, v, "v");
    require(op, g, "g");
    require(op, w, "w");
    const int64_t K = slices(s, dim);
    normkit::WeightNormArgs<T> a{dim == -1 ? std::nullopt : std::optional<int64_t>(dim)};
    normkit::weight_norm_forward<T>({v, s}, opt(g, K), {w, s}, a, opt(norms, K));
  });
}

template <class T>
int weight_norm_backward(const T* dw, const T* v, const int64_t* shape, int rank, const T* g,
                         int64_t dim, T* dv, T* dg) {
  return guard([&] {
    const char* op = "weight_norm";
    auto s = to_shape(op, shape, rank);
    require(op, dw, "dw");
    require(op, v, "v");
    require(op, g, "g");
    const int64_t K = slices(s, dim);
    normkit::WeightNormArgs<T> a{dim == -1 ? std::nullopt : std::optional<int64_t>(dim)};
    normkit::weight_norm_backward<T>({dw, s}, {v, s}, opt(g, K), {dv, s}, opt(dg, K), a);
  });
}

}  // namespace

extern "C" {

const char* normkit_last_error(void) { return g_last_error.c_str(); }
const char* normkit_version(void) { return NORMKIT_VERSION; }
void normkit_set_num_threads(int n) { normkit::set_num_threads(n); }
int normkit_get_num_threads(void) { return normkit::get_num_threads(); }

// One pair of exported symbols (_f32, _f64) per templated entry point above.
#define NORMKIT_C_PAIR(name, params, args)                       \
  int normkit_##name##_f32 params(float) { return name<float> args; } \
  int normkit_##name##_f64 params(double) { return name<double> args; }

#define P_BN_FWD(T) (const T* x, const int64_t* shape, int rank, const T* weight, const T* bias, \
                     T* running_mean, T* running_var, int training, double momentum, double eps, T* y)
#define A_BN_FWD (x, shape, rank, weight, bias, running_mean, running_var, training, momentum, eps, y)
#define P_BN_BWD(T) (const T* dy, const T* x, const int64_t* shape, int rank, const T* weight,     \
                     const T* running_mean, const T* running_var, int training, double eps, T* dx, \
                     T* dweight, T* dbias)
#define A_BN_BWD (dy, x, shape, rank, weight, running_mean, running_var, training, eps, dx, dweight, dbias)
#define P_GN_FWD(T) (const T* x, const int64_t* shape, int rank, int64_t num_groups, const T* weight, \
                     const T* bias, double eps, T* y)
#define A_GN_FWD (x, shape, rank, num_groups, weight, bias, eps, y)
#define P_GN_BWD(T) (const T* dy, const T* x, const int64_t* shape, int rank, int64_t num_groups, \
                     const T* weight, double eps, T* dx, T* dweight, T* dbias)
#define A_GN_BWD (dy, x, shape, rank, num_groups, weight, eps, dx, dweight, dbias)
#define P_LN_FWD(T) (const T* x, const int64_t* shape, int rank, int normalized_rank, const T* weight, \
                     const T* bias, double eps, T* y)
#define A_LN_FWD (x, shape, rank, normalized_rank, weight, bias, eps, y)
#define P_LN_BWD(T) (const T* dy, const T* x, const int64_t* shape, int rank, int normalized_rank, \
                     const T* weight, double eps, T* dx, T* dweight, T* dbias)
#define A_LN_BWD (dy, x, shape, rank, normalized_rank, weight, eps, dx, dweight, dbias)
#define P_RMS_FWD(T) (const T* x, const int64_t* shape, int rank, int normalized_rank, const T* weight, \
                      const double* eps, int unit_offset, T* y)
#define A_RMS_FWD (x, shape, rank, normalized_rank, weight, eps, unit_offset, y)
#define P_RMS_BWD(T) (const T* dy, const T* x, const int64_t* shape, int rank, int normalized_rank, \
                      const T* weight, const double* eps, int unit_offset, T* dx, T* dweight)
#define A_RMS_BWD (dy, x, shape, rank, normalized_rank, weight, eps, unit_offset, dx, dweight)
#define P_WN_FWD(T) (const T* v, const int64_t* shape, int rank, const T* g, int64_t dim, T* w, T* norms)
#define A_WN_FWD (v, shape, rank, g, dim, w, norms)
#define P_WN_BWD(T) (const T* dw, const T* v, const int64_t* shape, int rank, const T* g, int64_t dim, \
                     T* dv, T* dg)
#define A_WN_BWD (dw, v, shape, rank, g, dim, dv, dg)

NORMKIT_C_PAIR(batch_norm_forward, P_BN_FWD, A_BN_FWD)
NORMKIT_C_PAIR(batch_norm_backward, P_BN_BWD, A_BN_BWD)
NORMKIT_C_PAIR(instance_norm_forward, P_BN_FWD, A_BN_FWD)
NORMKIT_C_PAIR(instance_norm_backward, P_BN_BWD, A_BN_BWD)
NORMKIT_C_PAIR(group_norm_forward, P_GN_FWD, A_GN_FWD)
NORMKIT_C_PAIR(group_norm_backward, P_GN_BWD, A_GN_BWD)
NORMKIT_C_PAIR(layer_norm_forward, P_LN_FWD, A_LN_FWD)
NORMKIT_C_PAIR(layer_norm_backward, P_LN_BWD, A_LN_BWD)
NORMKIT_C_PAIR(rms_norm_forward, P_RMS_FWD, A_RMS_FWD)
NORMKIT_C_PAIR(rms_norm_backward, P_RMS_BWD, A_RMS_BWD)
NORMKIT_C_PAIR(weight_norm_forward, P_WN_FWD, A_WN_FWD)
NORMKIT_C_PAIR(weight_norm_backward, P_WN_BWD, A_WN_BWD)

}  // extern "C"
