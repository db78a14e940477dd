/* normkit/normkit.h — the C API: the six normalizations, forward and backward, float and
   double, over contiguous row-major buffers described by an explicit shape array. Plain C99,
   no handles: parameters and running statistics are caller-owned buffers (nothing to free),
   so every other language's FFI can call it. Each function returns a normkit_status. */
#ifndef NORMKIT_H
#define NORMKIT_H

#include <stdint.h>

#include "normkit/export.hpp"

#ifdef __cplusplus
extern "C" {
#endif

/** @file normkit.h
    @brief The C API of normkit.

    Conventions shared by every op function:
    - Tensors are contiguous row-major buffers; `shape` has `rank` entries and every tensor
      of one call (x, y, dy, dx) has that shape.
    - An optional pointer (weight, bias, running statistics, dx, dweight, dbias, norms) may
      be NULL: NULL means "absent" (for an output: "do not compute it"). A non-NULL one must
      point to exactly as many values as the operation expects (C for per-channel buffers).
    - On failure the function returns a nonzero ::normkit_status, writes nothing (outputs
      and running statistics are untouched) and normkit_last_error() describes the problem
      as "[op] what=value ...".
    - Backward functions OVERWRITE dx, dweight and dbias and never touch running statistics.
*/

/** What a normkit C function returns. */
typedef enum normkit_status {
  NORMKIT_OK = 0,                     /**< success */
  NORMKIT_ERROR_INVALID_ARGUMENT = 1, /**< a bad shape, size, eps, momentum, group count ... */
  NORMKIT_ERROR_NULL_POINTER = 2,     /**< a required pointer (x, y, shape, g ...) is NULL */
  NORMKIT_ERROR_OUT_OF_MEMORY = 3,    /**< an allocation failed */
  NORMKIT_ERROR_INTERNAL = 4          /**< any other failure (a bug: please report it) */
} normkit_status;

/** The message of the last normkit call made on this thread: "" after a success, else
    "[op] what=value ...". The pointer stays valid until the next normkit call on the
    same thread. */
NORMKIT_API const char* normkit_last_error(void);

/** The library version, e.g. "0.1.0" (the C++ macro NORMKIT_VERSION). */
NORMKIT_API const char* normkit_version(void);

/** Threads the engine may use (OpenMP). Results are bitwise identical for any count. */
NORMKIT_API void normkit_set_num_threads(int n);

/** Threads the engine uses at most. */
NORMKIT_API int normkit_get_num_threads(void);

/** @name BatchNorm
    x is (N, C, *): one statistic per channel over N and the spatial dims. weight, bias,
    running_mean and running_var have C values (each may be NULL; the running statistics
    come together). training != 0 normalizes with the batch statistics and updates the
    running ones (running = (1 - momentum) * running + momentum * batch, unbiased variance);
    training == 0 normalizes with the running statistics when given. */
/**@{*/
/** BatchNorm forward, float: writes y (and, in training, the running statistics). */
NORMKIT_API int normkit_batch_norm_forward_f32(const float* x, const int64_t* shape, int rank,
                                               const float* weight, const float* bias,
                                               float* running_mean, float* running_var,
                                               int training, double momentum, double eps, float* y);
/** BatchNorm forward, double: writes y (and, in training, the running statistics). */
NORMKIT_API int normkit_batch_norm_forward_f64(const double* x, const int64_t* shape, int rank,
                                               const double* weight, const double* bias,
                                               double* running_mean, double* running_var,
                                               int training, double momentum, double eps, double* y);
/** BatchNorm backward, float: writes dx, dweight and dbias. */
NORMKIT_API int normkit_batch_norm_backward_f32(const float* dy, const float* x, const int64_t* shape,
                                                int rank, const float* weight,
                                                const float* running_mean, const float* running_var,
                                                int training, double eps, float* dx, float* dweight,
                                                float* dbias);
/** BatchNorm backward, double: writes dx, dweight and dbias. */
NORMKIT_API int normkit_batch_norm_backward_f64(const double* dy, const double* x,
                                                const int64_t* shape, int rank, const double* weight,
                                                const double* running_mean,
                                                const double* running_var, int training, double eps,
                                                double* dx, double* dweight, double* dbias);
/**@}*/

/** @name InstanceNorm
    x is (N, C, *): one statistic per (n, c) over the spatial dims. Buffers as for
    BatchNorm; use_input_stats != 0 normalizes with each instance's statistics (and updates
    the running ones with their batch average), 0 uses the running statistics. */
/**@{*/
/** InstanceNorm forward, float: writes y (and, with use_input_stats, the running statistics). */
NORMKIT_API int normkit_instance_norm_forward_f32(const float* x, const int64_t* shape, int rank,
                                                  const float* weight, const float* bias,
                                                  float* running_mean, float* running_var,
                                                  int use_input_stats, double momentum, double eps,
                                                  float* y);
/** InstanceNorm forward, double: writes y (and, with use_input_stats, the running statistics). */
NORMKIT_API int normkit_instance_norm_forward_f64(const double* x, const int64_t* shape, int rank,
                                                  const double* weight, const double* bias,
                                                  double* running_mean, double* running_var,
                                                  int use_input_stats, double momentum, double eps,
                                                  double* y);
/** InstanceNorm backward, float: writes dx, dweight and dbias. */
NORMKIT_API int normkit_instance_norm_backward_f32(const float* dy, const float* x,
                                                   const int64_t* shape, int rank,
                                                   const float* weight, const float* running_mean,
                                                   const float* running_var, int use_input_stats,
                                                   double eps, float* dx, float* dweight,
                                                   float* dbias);
/** InstanceNorm backward, double: writes dx, dweight and dbias. */
NORMKIT_API int normkit_instance_norm_backward_f64(const double* dy, const double* x,
                                                   const int64_t* shape, int rank,
                                                   const double* weight, const double* running_mean,
                                                   const double* running_var, int use_input_stats,
                                                   double eps, double* dx, double* dweight,
                                                   double* dbias);
/**@}*/

/** @name GroupNorm
    x is (N, C, *): one statistic per (n, group) over C/num_groups channels and the spatial
    dims; num_groups must divide C. weight and bias (C values each) may be NULL. */
/**@{*/
/** GroupNorm forward, float: writes y. */
NORMKIT_API int normkit_group_norm_forward_f32(const float* x, const int64_t* shape, int rank,
                                               int64_t num_groups, const float* weight,
                                               const float* bias, double eps, float* y);
/** GroupNorm forward, double: writes y. */
NORMKIT_API int normkit_group_norm_forward_f64(const double* x, const int64_t* shape, int rank,
                                               int64_t num_groups, const double* weight,
                                               const double* bias, double eps, double* y);
/** GroupNorm backward, float: writes dx, dweight and dbias. */
NORMKIT_API int normkit_group_norm_backward_f32(const float* dy, const float* x, const int64_t* shape,
                                                int rank, int64_t num_groups, const float* weight,
                                                double eps, float* dx, float* dweight, float* dbias);
/** GroupNorm backward, double: writes dx, dweight and dbias. */
NORMKIT_API int normkit_group_norm_backward_f64(const double* dy, const double* x,
                                                const int64_t* shape, int rank, int64_t num_groups,
                                                const double* weight, double eps, double* dx,
                                                double* dweight, double* dbias);
/**@}*/

/** @name LayerNorm
    One statistic per leading index over the last normalized_rank dims of x (PyTorch's
    normalized_shape = shape[rank - normalized_rank:]). weight and bias have that many
    elements (product of those dims) and may each be NULL. */
/**@{*/
/** LayerNorm forward, float: writes y. */
NORMKIT_API int normkit_layer_norm_forward_f32(const float* x, const int64_t* shape, int rank,
                                               int normalized_rank, const float* weight,
                                               const float* bias, double eps, float* y);
/** LayerNorm forward, double: writes y. */
NORMKIT_API int normkit_layer_norm_forward_f64(const double* x, const int64_t* shape, int rank,
                                               int normalized_rank, const double* weight,
                                               const double* bias, double eps, double* y);
/** LayerNorm backward, float: writes dx, dweight and dbias. */
NORMKIT_API int normkit_layer_norm_backward_f32(const float* dy, const float* x, const int64_t* shape,
                                                int rank, int normalized_rank, const float* weight,
                                                double eps, float* dx, float* dweight, float* dbias);
/** LayerNorm backward, double: writes dx, dweight and dbias. */
NORMKIT_API int normkit_layer_norm_backward_f64(const double* dy, const double* x,
                                                const int64_t* shape, int rank, int normalized_rank,
                                                const double* weight, double eps, double* dx,
                                                double* dweight, double* dbias);
/**@}*/

/** @name RMSNorm
    y = x / sqrt(mean(x^2) + eps) * w over the last normalized_rank dims. eps points to the
    epsilon, or is NULL for the machine epsilon of the element type (PyTorch's eps=None).
    unit_offset != 0 selects the Gemma form, scaling by (1 + w). weight may be NULL. */
/**@{*/
/** RMSNorm forward, float: writes y. */
NORMKIT_API int normkit_rms_norm_forward_f32(const float* x, const int64_t* shape, int rank,
                                             int normalized_rank, const float* weight,
                                             const double* eps, int unit_offset, float* y);
/** RMSNorm forward, double: writes y. */
NORMKIT_API int normkit_rms_norm_forward_f64(const double* x, const int64_t* shape, int rank,
                                             int normalized_rank, const double* weight,
                                             const double* eps, int unit_offset, double* y);
/** RMSNorm backward, float: writes dx and dweight. */
NORMKIT_API int normkit_rms_norm_backward_f32(const float* dy, const float* x, const int64_t* shape,
                                              int rank, int normalized_rank, const float* weight,
                                              const double* eps, int unit_offset, float* dx,
                                              float* dweight);
/** RMSNorm backward, double: writes dx and dweight. */
NORMKIT_API int normkit_rms_norm_backward_f64(const double* dy, const double* x,
                                              const int64_t* shape, int rank, int normalized_rank,
                                              const double* weight, const double* eps,
                                              int unit_offset, double* dx, double* dweight);
/**@}*/

/** @name WeightNorm
    w = g * v / ||v||, the norm over every dim of v except dim; dim = -1 takes one norm over
    the whole tensor. g (required) has shape[dim] values (1 for dim = -1); norms, if not
    NULL, receives ||v|| per slice. Backward takes dw, the gradient with respect to w, and
    writes dv (shaped like v, may be NULL) and dg (like g, may be NULL). */
/**@{*/
/** WeightNorm forward, float: writes w (and norms). */
NORMKIT_API int normkit_weight_norm_forward_f32(const float* v, const int64_t* shape, int rank,
                                                const float* g, int64_t dim, float* w, float* norms);
/** WeightNorm forward, double: writes w (and norms). */
NORMKIT_API int normkit_weight_norm_forward_f64(const double* v, const int64_t* shape, int rank,
                                                const double* g, int64_t dim, double* w,
                                                double* norms);
/** WeightNorm backward, float: writes dv and dg. */
NORMKIT_API int normkit_weight_norm_backward_f32(const float* dw, const float* v, const int64_t* shape,
                                                 int rank, const float* g, int64_t dim, float* dv,
                                                 float* dg);
/** WeightNorm backward, double: writes dv and dg. */
NORMKIT_API int normkit_weight_norm_backward_f64(const double* dw, const double* v,
                                                 const int64_t* shape, int rank, const double* g,
                                                 int64_t dim, double* dv, double* dg);
/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* NORMKIT_H */
