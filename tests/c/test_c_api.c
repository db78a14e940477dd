/* test_c_api.c — the C API from a C99 program: every op forward and backward, float and
   double. Forward outputs are checked with plain loops here, double backward against
   finite differences, float backward against double; errors leave outputs untouched. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "normkit/normkit.h"

static int failures = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
      printf(__VA_ARGS__);                                \
      printf("\n");                                       \
      ++failures;                                         \
    }                                                     \
  } while (0)
#define OK(call) CHECK((call) == NORMKIT_OK, "%s -> %s", #call, normkit_last_error())

enum { N = 2, C = 6, L = 5, NUMEL = N * C * L };
static const int64_t shape[3] = {N, C, L};

static double x64[NUMEL], y64[NUMEL], r64[NUMEL], dx64[NUMEL];
static float x32[NUMEL], y32[NUMEL], r32[NUMEL], dx32[NUMEL];
static double w64[C], b64[C];
static float w32[C], b32[C];

/* A forward pass of one op on x (double), with the parameters in `weight`. */
typedef int (*forward_fn)(const double* x, const double* weight, double* y);

/* loss = sum(y * r); its gradient with respect to x[i] and weight[k] by central differences. */
static double loss(forward_fn f, const double* x, const double* weight) {
  static double y[NUMEL];
  double s = 0;
  if (f(x, weight, y) != NORMKIT_OK) return NAN;
  for (int i = 0; i < NUMEL; ++i) s += y[i] * r64[i];
  return s;
}

static void check_grad(const char* name, forward_fn f, const double* dx, double* weight,
                       const double* dweight, int num_weight) {
  static double xp[NUMEL];
  const double h = 1e-6;
  double worst = 0;
  memcpy(xp, x64, sizeof xp);
  for (int i = 0; i < NUMEL; i += 7) {
    xp[i] = x64[i] + h;
    double up = loss(f, xp, weight);
    xp[i] = x64[i] - h;
    double down = loss(f, xp, weight);
    xp[i] = x64[i];
    double err = fabs((up - down) / (2 * h) - dx[i]);
    if (err > worst) worst = err;
  }
  for (int k = 0; k < num_weight && dweight; ++k) {
    double keep = weight[k];
    weight[k] = keep + h;
    double up = loss(f, x64, weight);
    weight[k] = keep - h;
    double down = loss(f, x64, weight);
    weight[k] = keep;
    double err = fabs((up - down) / (2 * h) - dweight[k]);
    if (err > worst) worst = err;
  }
  CHECK(worst < 1e-5, "%s: backward differs from finite differences by %g", name, worst);
}

/* max |a - b| between a float and a double result */
static double diff32(const float* a, const double* b, int n) {
  double worst = 0;
  for (int i = 0; i < n; ++i)
    if (fabs((double)a[i] - b[i]) > worst) worst = fabs((double)a[i] - b[i]);
  return worst;
}

/* mean and biased variance of the n values v[first + k * step], k < n */
static void moments(const double* v, int first, int step, int n, double* mean, double* var) {
  double m = 0, s = 0;
  for (int k = 0; k < n; ++k) m += v[first + k * step];
  m /= n;
  for (int k = 0; k < n; ++k) s += (v[first + k * step] - m) * (v[first + k * step] - m);
  *mean = m;
  *var = s / n;
}

/* ---- forward passes with the weight as a variable, for the finite differences ---------- */
static int fwd_layer(const double* x, const double* w, double* y) {
  return normkit_layer_norm_forward_f64(x, shape, 3, 2, w, NULL, 1e-5, y);
}
static int fwd_group(const double* x, const double* w, double* y) {
  return normkit_group_norm_forward_f64(x, shape, 3, 3, w, b64, 1e-5, y);
}
static int fwd_batch(const double* x, const double* w, double* y) {
  return normkit_batch_norm_forward_f64(x, shape, 3, w, b64, NULL, NULL, 1, 0.1, 1e-5, y);
}
static int fwd_instance(const double* x, const double* w, double* y) {
  return normkit_instance_norm_forward_f64(x, shape, 3, w, NULL, NULL, NULL, 1, 0.1, 1e-5, y);
}
static int fwd_rms(const double* x, const double* w, double* y) {
  const double eps = 1e-6;
  return normkit_rms_norm_forward_f64(x, shape, 3, 1, w, &eps, 0, y);
}
static int fwd_weight(const double* v, const double* g, double* w) {
  return normkit_weight_norm_forward_f64(v, shape, 3, g, 1, w, NULL);
}

static void test_layer_norm(void) {
  double lw[C * L], dlw[C * L], dlb[C * L];
  float lw32[C * L], dlw32[C * L], dlb32[C * L];
  for (int i = 0; i < C * L; ++i) lw32[i] = (float)(lw[i] = 1.0 + 0.01 * i);
  OK(normkit_layer_norm_forward_f64(x64, shape, 3, 2, NULL, NULL, 1e-5, y64));
  for (int n = 0; n < N; ++n) {
    double m, v;
    moments(y64, n * C * L, 1, C * L, &m, &v);
    CHECK(fabs(m) < 1e-12 && fabs(v - 1) < 1e-3, "layer_norm row %d: mean %g var %g", n, m, v);
  }
  OK(normkit_layer_norm_forward_f32(x32, shape, 3, 2, lw32, NULL, 1e-5, y32));
  OK(normkit_layer_norm_forward_f64(x64, shape, 3, 2, lw, NULL, 1e-5, y64));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "layer_norm f32 vs f64: %g", diff32(y32, y64, NUMEL));
  OK(normkit_layer_norm_backward_f64(r64, x64, shape, 3, 2, lw, 1e-5, dx64, dlw, dlb));
  check_grad("layer_norm", fwd_layer, dx64, lw, dlw, C * L);
  OK(normkit_layer_norm_backward_f32(r32, x32, shape, 3, 2, lw32, 1e-5, dx32, dlw32, dlb32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4, "layer_norm backward f32 vs f64");
  CHECK(diff32(dlw32, dlw, C * L) < 1e-4, "layer_norm dweight f32 vs f64");
}

static void test_group_norm(void) {
  double dw[C], db[C];
  float dw32[C], db32[C];
  OK(normkit_group_norm_forward_f64(x64, shape, 3, 3, NULL, NULL, 1e-5, y64));
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < 3; ++g) {  /* a group: 2 channels x L, contiguous */
      double m, v;
      moments(y64, (n * C + 2 * g) * L, 1, 2 * L, &m, &v);
      CHECK(fabs(m) < 1e-12 && fabs(v - 1) < 1e-3, "group_norm (%d,%d): mean %g var %g", n, g, m, v);
    }
  OK(normkit_group_norm_forward_f32(x32, shape, 3, 3, w32, b32, 1e-5, y32));
  OK(normkit_group_norm_forward_f64(x64, shape, 3, 3, w64, b64, 1e-5, y64));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "group_norm f32 vs f64");
  OK(normkit_group_norm_backward_f64(r64, x64, shape, 3, 3, w64, 1e-5, dx64, dw, db));
  check_grad("group_norm", fwd_group, dx64, w64, dw, C);
  OK(normkit_group_norm_backward_f32(r32, x32, shape, 3, 3, w32, 1e-5, dx32, dw32, db32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4 && diff32(db32, db, C) < 1e-4, "group_norm backward f32");
}

static void test_batch_norm(void) {
  double rm[C], rv[C], dw[C], db[C];
  float rm32[C], rv32[C], dw32[C], db32[C];
  for (int c = 0; c < C; ++c) {
    rm32[c] = (float)(rm[c] = 0);
    rv32[c] = (float)(rv[c] = 1);
  }
  OK(normkit_batch_norm_forward_f64(x64, shape, 3, NULL, NULL, rm, rv, 1, 0.1, 1e-5, y64));
  for (int c = 0; c < C; ++c) {
    double m = 0, s = 0;
    for (int n = 0; n < N; ++n)
      for (int l = 0; l < L; ++l) m += x64[(n * C + c) * L + l] / (N * L);
    for (int n = 0; n < N; ++n)
      for (int l = 0; l < L; ++l) s += pow(x64[(n * C + c) * L + l] - m, 2);
    CHECK(fabs(rm[c] - 0.1 * m) < 1e-12, "batch_norm running_mean[%d]=%g, expected %g", c, rm[c], 0.1 * m);
    CHECK(fabs(rv[c] - (0.9 + 0.1 * s / (N * L - 1))) < 1e-12, "batch_norm running_var[%d]", c);
  }
  OK(normkit_batch_norm_forward_f32(x32, shape, 3, w32, b32, rm32, rv32, 1, 0.1, 1e-5, y32));
  CHECK(diff32(rm32, rm, C) < 1e-6 && diff32(rv32, rv, C) < 1e-6, "batch_norm running f32");
  /* eval: (x - running_mean) / sqrt(running_var + eps) */
  OK(normkit_batch_norm_forward_f64(x64, shape, 3, NULL, NULL, rm, rv, 0, 0.1, 1e-5, y64));
  CHECK(fabs(y64[L] - (x64[L] - rm[1]) / sqrt(rv[1] + 1e-5)) < 1e-12, "batch_norm eval");
  OK(normkit_batch_norm_forward_f64(x64, shape, 3, w64, b64, NULL, NULL, 1, 0.1, 1e-5, y64));
  OK(normkit_batch_norm_forward_f32(x32, shape, 3, w32, b32, NULL, NULL, 1, 0.1, 1e-5, y32));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "batch_norm f32 vs f64");
  OK(normkit_batch_norm_backward_f64(r64, x64, shape, 3, w64, NULL, NULL, 1, 1e-5, dx64, dw, db));
  check_grad("batch_norm", fwd_batch, dx64, w64, dw, C);
  OK(normkit_batch_norm_backward_f32(r32, x32, shape, 3, w32, NULL, NULL, 1, 1e-5, dx32, dw32, db32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4 && diff32(dw32, dw, C) < 1e-4, "batch_norm backward f32");
  /* one value per channel in training is an error, and nothing is written */
  {
    const int64_t one[2] = {1, C};
    double before = y64[0];
    CHECK(normkit_batch_norm_forward_f64(x64, one, 2, NULL, NULL, rm, rv, 1, 0.1, 1e-5, y64) ==
              NORMKIT_ERROR_INVALID_ARGUMENT, "batch_norm one value per channel");
    CHECK(strncmp(normkit_last_error(), "[batch_norm]", 12) == 0, "message: %s", normkit_last_error());
    CHECK(y64[0] == before, "batch_norm wrote y on error");
  }
}

static void test_instance_norm(void) {
  double dw[C], db[C];
  float dw32[C], db32[C];
  OK(normkit_instance_norm_forward_f64(x64, shape, 3, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5, y64));
  for (int i = 0; i < N * C; ++i) {
    double m, v;
    moments(y64, i * L, 1, L, &m, &v);
    CHECK(fabs(m) < 1e-12 && fabs(v - 1) < 1e-3, "instance_norm %d: mean %g var %g", i, m, v);
  }
  OK(normkit_instance_norm_forward_f32(x32, shape, 3, w32, b32, NULL, NULL, 1, 0.1, 1e-5, y32));
  OK(normkit_instance_norm_forward_f64(x64, shape, 3, w64, b64, NULL, NULL, 1, 0.1, 1e-5, y64));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "instance_norm f32 vs f64");
  OK(normkit_instance_norm_backward_f64(r64, x64, shape, 3, w64, NULL, NULL, 1, 1e-5, dx64, dw, db));
  check_grad("instance_norm", fwd_instance, dx64, w64, dw, C);
  OK(normkit_instance_norm_backward_f32(r32, x32, shape, 3, w32, NULL, NULL, 1, 1e-5, dx32, dw32, db32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4, "instance_norm backward f32");
}

static void test_rms_norm(void) {
  double dw[L];
  float dw32[L];
  const double eps = 1e-6;
  OK(normkit_rms_norm_forward_f64(x64, shape, 3, 1, w64, &eps, 0, y64));
  for (int row = 0; row < N * C; ++row) {
    double ms = 0;
    for (int l = 0; l < L; ++l) ms += x64[row * L + l] * x64[row * L + l] / L;
    for (int l = 0; l < L; ++l) {
      double want = x64[row * L + l] / sqrt(ms + eps) * w64[l];
      CHECK(fabs(y64[row * L + l] - want) < 1e-12, "rms_norm (%d,%d)", row, l);
    }
  }
  /* eps NULL: the machine epsilon of the element type, as PyTorch's eps=None */
  OK(normkit_rms_norm_forward_f32(x32, shape, 3, 1, w32, NULL, 0, y32));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "rms_norm f32 vs f64");
  /* Gemma: (1 + w) with w = 0 is no affine at all */
  {
    const double zero[L] = {0};
    double plain[NUMEL];
    OK(normkit_rms_norm_forward_f64(x64, shape, 3, 1, zero, &eps, 1, y64));
    OK(normkit_rms_norm_forward_f64(x64, shape, 3, 1, NULL, &eps, 0, plain));
    CHECK(fabs(y64[3] - plain[3]) < 1e-15, "rms_norm unit_offset");
  }
  OK(normkit_rms_norm_backward_f64(r64, x64, shape, 3, 1, w64, &eps, 0, dx64, dw));
  check_grad("rms_norm", fwd_rms, dx64, w64, dw, L);
  OK(normkit_rms_norm_backward_f32(r32, x32, shape, 3, 1, w32, &eps, 0, dx32, dw32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4 && diff32(dw32, dw, L) < 1e-4, "rms_norm backward f32");
}

static void test_weight_norm(void) {
  double norms[C], dg[C], whole;
  float g32[C], dg32[C], norms32[C];
  for (int c = 0; c < C; ++c) g32[c] = w32[c];
  OK(normkit_weight_norm_forward_f64(x64, shape, 3, w64, 1, y64, norms));
  for (int c = 0; c < C; ++c) {
    double s = 0;
    for (int n = 0; n < N; ++n)
      for (int l = 0; l < L; ++l) s += pow(x64[(n * C + c) * L + l], 2);
    CHECK(fabs(norms[c] - sqrt(s)) < 1e-12, "weight_norm norms[%d]", c);
    CHECK(fabs(y64[c * L + 2] - w64[c] * x64[c * L + 2] / sqrt(s)) < 1e-12, "weight_norm w");
  }
  OK(normkit_weight_norm_forward_f32(x32, shape, 3, g32, 1, y32, norms32));
  CHECK(diff32(y32, y64, NUMEL) < 1e-5, "weight_norm f32 vs f64");
  /* dim = -1: one norm over the whole tensor, g has one value */
  OK(normkit_weight_norm_forward_f64(x64, shape, 3, w64, -1, y64, &whole));
  {
    double s = 0;
    for (int i = 0; i < NUMEL; ++i) s += x64[i] * x64[i];
    CHECK(fabs(whole - sqrt(s)) < 1e-12, "weight_norm dim=-1");
  }
  OK(normkit_weight_norm_backward_f64(r64, x64, shape, 3, w64, 1, dx64, dg));
  check_grad("weight_norm", fwd_weight, dx64, w64, dg, C);
  OK(normkit_weight_norm_backward_f32(r32, x32, shape, 3, g32, 1, dx32, dg32));
  CHECK(diff32(dx32, dx64, NUMEL) < 1e-4 && diff32(dg32, dg, C) < 1e-4, "weight_norm backward f32");
}

static void test_errors(void) {
  float sentinel = -123.0f;
  y32[0] = sentinel;
  /* num_groups not dividing C: an error naming the op and the values, y untouched */
  CHECK(normkit_group_norm_forward_f32(x32, shape, 3, 4, NULL, NULL, 1e-5, y32) ==
            NORMKIT_ERROR_INVALID_ARGUMENT, "group_norm num_groups=4");
  CHECK(strstr(normkit_last_error(), "[group_norm]") == normkit_last_error() &&
            strstr(normkit_last_error(), "num_groups=4"), "message: %s", normkit_last_error());
  CHECK(y32[0] == sentinel, "group_norm wrote y on error");
  /* a success clears the message */
  OK(normkit_group_norm_forward_f32(x32, shape, 3, 2, NULL, NULL, 1e-5, y32));
  CHECK(normkit_last_error()[0] == '\0', "message after success: %s", normkit_last_error());
  /* required pointers */
  CHECK(normkit_layer_norm_forward_f32(NULL, shape, 3, 1, NULL, NULL, 1e-5, y32) ==
            NORMKIT_ERROR_NULL_POINTER, "layer_norm x NULL");
  CHECK(strcmp(normkit_last_error(), "[layer_norm] x is NULL") == 0, "message: %s", normkit_last_error());
  CHECK(normkit_weight_norm_forward_f64(x64, shape, 3, NULL, 0, y64, NULL) ==
            NORMKIT_ERROR_NULL_POINTER, "weight_norm g NULL");
  /* bad ranks and sizes */
  CHECK(normkit_layer_norm_forward_f32(x32, shape, 3, 4, NULL, NULL, 1e-5, y32) ==
            NORMKIT_ERROR_INVALID_ARGUMENT, "layer_norm normalized_rank=4");
  CHECK(strstr(normkit_last_error(), "normalized_rank=4") != NULL, "message: %s", normkit_last_error());
  {
    const int64_t bad[3] = {N, -C, L};
    CHECK(normkit_rms_norm_forward_f32(x32, bad, 3, 1, NULL, NULL, 0, y32) ==
              NORMKIT_ERROR_INVALID_ARGUMENT, "rms_norm negative size");
  }
  CHECK(normkit_batch_norm_forward_f32(x32, shape, 1, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5, y32) ==
            NORMKIT_ERROR_INVALID_ARGUMENT, "batch_norm rank 1");
  CHECK(normkit_instance_norm_forward_f64(x64, shape, 3, NULL, NULL, NULL, NULL, 1, 0.1, -1.0, y64) ==
            NORMKIT_ERROR_INVALID_ARGUMENT, "instance_norm eps=-1");
  CHECK(strstr(normkit_last_error(), "eps=-1") != NULL, "message: %s", normkit_last_error());
  CHECK(normkit_weight_norm_forward_f64(x64, shape, 3, w64, 3, y64, NULL) ==
            NORMKIT_ERROR_INVALID_ARGUMENT, "weight_norm dim=3");
}

int main(void) {
  for (int i = 0; i < NUMEL; ++i) {
    x32[i] = (float)(x64[i] = sin(0.7 * i) * 2.0 + 0.1 * (i % 3));
    r32[i] = (float)(r64[i] = cos(1.3 * i));
  }
  for (int c = 0; c < C; ++c) {
    w32[c] = (float)(w64[c] = 0.5 + 0.25 * c);
    b32[c] = (float)(b64[c] = 0.1 * c - 0.2);
  }
  printf("normkit %s, C API\n", normkit_version());
  test_layer_norm();
  test_group_norm();
  test_batch_norm();
  test_instance_norm();
  test_rms_norm();
  test_weight_norm();
  test_errors();
  if (failures) {
    printf("%d check(s) failed\n", failures);
    return 1;
  }
  printf("all C API checks passed\n");
  return 0;
}
