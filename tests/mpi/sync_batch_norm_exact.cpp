// sync_batch_norm_exact.cpp — under `mpiexec -np 2|3`: a global batch split unevenly (one rank
// empty in some cases) must give single-process BatchNorm's results (1e-5 in float), and the
// shared results must be bit-identical on every rank. Exit 0 only if every rank passed.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "normkit/normkit.hpp"
#include "normkit/sync_batch_norm.hpp"
#include "sync_test_util.hpp"

namespace {
using namespace normkit;
using sync_test::max_rel_err;
using sync_test::random_vec;
using sync_test::slice;

struct Checker {
  int rank = 0, ranks = 1, failures = 0, checks = 0;
  double worst = 0;

  void fail(const std::string& msg) {
    ++failures;
    std::fprintf(stderr, "rank %d: FAIL %s\n", rank, msg.c_str());
  }
  void expect(bool ok, const std::string& msg) {
    ++checks;
    if (!ok) fail(msg);
  }
  template <class T, class U>
  void close(const std::string& what, const std::vector<T>& got, const std::vector<U>& want) {
    const double e = max_rel_err(got, want);
    worst = std::max(worst, e);
    expect(e <= sync_test::tol<T>(), what + ": max relative error " + std::to_string(e));
  }
  // Every rank passes its copy; all copies must equal rank 0's byte for byte.
  template <class T>
  void same_everywhere(const std::string& what, const std::vector<T>& v) {
    int n = static_cast<int>(v.size() * sizeof(T)), nmax = 0, nmin = 0;
    MPI_Allreduce(&n, &nmax, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&n, &nmin, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (nmax != nmin) return expect(false, what + ": sizes differ between ranks");
    std::vector<char> all(static_cast<size_t>(n) * static_cast<size_t>(ranks));
    MPI_Allgather(v.data(), n, MPI_BYTE, all.data(), n, MPI_BYTE, MPI_COMM_WORLD);
    for (int r = 1; r < ranks; ++r)
      expect(std::memcmp(all.data(), all.data() + static_cast<size_t>(r) * n, static_cast<size_t>(n)) == 0,
             what + ": rank " + std::to_string(r) + " differs from rank 0 bitwise");
  }
  template <class F>
  void expect_error(const std::string& what, F&& f, const std::string& needle) {
    try {
      f();
      expect(false, what + ": no error thrown, expected one containing '" + needle + "'");
    } catch (const Error& e) {
      expect(std::string(e.what()).find(needle) != std::string::npos,
             what + ": error '" + e.what() + "' lacks '" + needle + "'");
    }
  }
};

// The global batch (N, C, H, W) and this rank's samples [n0, n0 + n).
struct Split {
  std::vector<int64_t> sizes;
  int64_t N = 0, n0 = 0, n = 0;
  Split(const Checker& ck, bool with_empty) : sizes(sync_test::split(ck.ranks, with_empty)) {
    for (int64_t s : sizes) N += s;
    n0 = sync_test::first_sample(sizes, ck.rank), n = sizes[static_cast<size_t>(ck.rank)];
  }
};

const int64_t C = 6, H = 5, W = 3, CHW = C * H * W;

template <class T>
TensorView<T> view(std::vector<T>& v, int64_t n) { return {v.data(), {n, C, H, W}}; }
template <class T>
TensorView<const T> cview(const std::vector<T>& v, int64_t n) { return {v.data(), {n, C, H, W}}; }

// The layer for a few training steps (gradients accumulating), then one eval step.
template <class T>
void layer_case(Checker& ck, bool with_empty, typename BatchNorm<T>::Options opt, const std::string& name) {
  const Split sp(ck, with_empty);
  SyncBatchNorm<T> sbn(C, MPI_COMM_WORLD, opt);
  BatchNorm<T> ref(C, opt);
  if (opt.affine) {
    sbn.weight = ref.weight = random_vec<T>(C, 11, 1.0, 0.5);
    sbn.bias = ref.bias = random_vec<T>(C, 12);
  }
  for (int step = 0; step < 3; ++step) {
    const std::string at = name + " step " + std::to_string(step);
    const auto x = random_vec<T>(sp.N * CHW, 100 + step, 2.0, 1.5), dy = random_vec<T>(sp.N * CHW, 200 + step);
    std::vector<T> y(x.size()), dx(x.size());
    ref.forward(cview(x, sp.N), view(y, sp.N));
    ref.backward(cview(dy, sp.N), cview(x, sp.N), view(dx, sp.N));
    const auto xl = slice(x, sp.n0 * CHW, sp.n * CHW), dyl = slice(dy, sp.n0 * CHW, sp.n * CHW);
    std::vector<T> yl(xl.size()), dxl(xl.size());
    sbn.forward(cview(xl, sp.n), view(yl, sp.n));
    sbn.backward(cview(dyl, sp.n), cview(xl, sp.n), view(dxl, sp.n));
    ck.close(at + " y", yl, slice(y, sp.n0 * CHW, sp.n * CHW));
    ck.close(at + " dx", dxl, slice(dx, sp.n0 * CHW, sp.n * CHW));
    ck.close(at + " weight_grad", sbn.weight_grad, ref.weight_grad);
    ck.close(at + " bias_grad", sbn.bias_grad, ref.bias_grad);
    ck.close(at + " running_mean", sbn.running_mean, ref.running_mean);
    ck.close(at + " running_var", sbn.running_var, ref.running_var);
    ck.expect(sbn.num_batches_tracked == ref.num_batches_tracked, at + " num_batches_tracked");
    for (const auto* v : {&sbn.weight_grad, &sbn.bias_grad, &sbn.running_mean, &sbn.running_var})
      ck.same_everywhere(at + " shared state", *v);
    ck.same_everywhere(at + " batch mean", sbn.saved.mean);
    ck.same_everywhere(at + " batch rstd", sbn.saved.rstd);
  }
  // Eval: no communication (an empty rank simply does nothing).
  sbn.eval(), ref.eval();
  const auto x = random_vec<T>(sp.N * CHW, 300, 2.0, 1.5), dy = random_vec<T>(sp.N * CHW, 301);
  const auto xl = slice(x, sp.n0 * CHW, sp.n * CHW), dyl = slice(dy, sp.n0 * CHW, sp.n * CHW);
  std::vector<T> yl(xl.size()), dxl(xl.size()), yr(xl.size()), dxr(xl.size());
  sbn.forward(cview(xl, sp.n), view(yl, sp.n));
  sbn.backward(cview(dyl, sp.n), cview(xl, sp.n), view(dxl, sp.n));
  BatchNorm<T> local = ref;  // eval is local: the same layer on the local batch only
  local.forward(cview(xl, sp.n), view(yr, sp.n));
  local.backward(cview(dyl, sp.n), cview(xl, sp.n), view(dxr, sp.n));
  ck.close(name + " eval y", yl, yr);
  ck.close(name + " eval dx", dxl, dxr);
}

// The functional form on channels-last views.
template <class T>
void functional_case(Checker& ck, bool with_empty) {
  const Split sp(ck, with_empty);
  const Strides cl{H * W * C, 1, W * C, C};
  const auto x = random_vec<T>(sp.N * CHW, 400, -1.0, 3.0), dy = random_vec<T>(sp.N * CHW, 401);
  const auto w = random_vec<T>(C, 402, 1.0, 0.5), b = random_vec<T>(C, 403);
  std::vector<T> rm = random_vec<T>(C, 404), rv = random_vec<T>(C, 405, 1.5, 0.5), rm_ref = rm, rv_ref = rv;
  std::vector<T> y(x.size()), dx(x.size()), dw(C), db(C), dw_ref(C), db_ref(C);
  BatchNormArgs<T> a;
  a.weight = w, a.bias = b, a.running_mean = rm_ref, a.running_var = rv_ref, a.training = true, a.momentum = 0.3;
  const Shape full{sp.N, C, H, W}, mine{sp.n, C, H, W};
  batch_norm_forward<T>({x.data(), full, cl}, {y.data(), full, cl}, a);
  batch_norm_backward<T>({dy.data(), full, cl}, {x.data(), full, cl}, {dx.data(), full, cl}, a, dw_ref, db_ref);
  const auto xl = slice(x, sp.n0 * CHW, sp.n * CHW), dyl = slice(dy, sp.n0 * CHW, sp.n * CHW);
  std::vector<T> yl(xl.size()), dxl(xl.size());
  a.running_mean = rm, a.running_var = rv;
  const BatchNormStats s = sync_batch_norm_forward<T>({xl.data(), mine, cl}, {yl.data(), mine, cl}, a, MPI_COMM_WORLD);
  sync_batch_norm_backward<T>({dyl.data(), mine, cl}, {xl.data(), mine, cl}, {dxl.data(), mine, cl}, a, s,
                              MPI_COMM_WORLD, dw, db);
  const std::string at = std::string("functional channels-last") + (with_empty ? " with an empty rank" : "");
  ck.close(at + " y", yl, slice(y, sp.n0 * CHW, sp.n * CHW));
  ck.close(at + " dx", dxl, slice(dx, sp.n0 * CHW, sp.n * CHW));
  ck.close(at + " dweight", dw, dw_ref);
  ck.close(at + " dbias", db, db_ref);
  ck.close(at + " running_mean", rm, rm_ref);
  ck.close(at + " running_var", rv, rv_ref);
  for (const auto* v : {&dw, &db, &rm, &rv}) ck.same_everywhere(at + " shared results", *v);
  ck.same_everywhere(at + " stats", s.mean);
  ck.same_everywhere(at + " stats", s.var);
  ck.same_everywhere(at + " stats", s.rstd);
}

// The one-value-per-channel rule counts the global batch; errors are collective.
void error_cases(Checker& ck) {
  SyncBatchNorm<float> sbn(3, MPI_COMM_WORLD);
  // Global count 1: rank 0 holds one sample of shape (1, 3), the others none.
  const int64_t n = ck.rank == 0 ? 1 : 0;
  std::vector<float> x = random_vec<float>(n * 3, 500), y(x.size(), 777.0f);
  ck.expect_error("global count 1", [&] { sbn.forward({x.data(), {n, 3}}, {y.data(), {n, 3}}); },
                  "[sync_batch_norm] expected more than 1 value per channel when training");
  ck.expect(sbn.running_mean == std::vector<float>(3, 0.0f) && sbn.num_batches_tracked == 0,
            "global count 1: running statistics untouched");
  for (float v : y) ck.expect(v == 777.0f, "global count 1: output untouched");
  // One value per channel on every rank is `ranks` values globally: no error, exact.
  const auto all = random_vec<float>(ck.ranks * 3, 501);
  std::vector<float> xl = slice(all, ck.rank * 3, 3), yl(3), yr(all.size());
  sbn.forward({xl.data(), {1, 3}}, {yl.data(), {1, 3}});
  BatchNorm<float> ref(3);
  ref.forward({all.data(), {ck.ranks, 3}}, {yr.data(), {ck.ranks, 3}});
  ck.close("one value per rank", yl, slice(yr, ck.rank * 3, 3));
  ck.close("one value per rank running_var", sbn.running_var, ref.running_var);
  // A bad argument on rank 1 only: every rank throws, none waits forever.
  std::vector<float> y_bad(3, 777.0f);
  const int64_t yn = ck.rank == 1 ? 2 : 1;
  ck.expect_error("bad output on rank 1", [&] { sbn.forward({xl.data(), {1, 3}}, {y_bad.data(), {yn, 3}}); },
                  ck.rank == 1 ? "[sync_batch_norm] output has shape 2x3" : "[sync_batch_norm] rank 1 of");
  ck.expect(y_bad == std::vector<float>(3, 777.0f), "bad output on rank 1: nothing written");
  // backward with a shape the last forward did not see: collective error too.
  std::vector<float> x2(6), dx2(6);
  ck.expect_error("backward after another forward shape",
                  [&] { sbn.backward({x2.data(), {2, 3}}, {x2.data(), {2, 3}}, {dx2.data(), {2, 3}}); },
                  "[sync_batch_norm] backward input shape 2x3 does not match the last training forward (1x3)");
  // Output overlapping the input on rank 0 only: collective error, nothing written.
  std::vector<float> buf = random_vec<float>(7, 502), other(6, 777.0f);
  const auto buf0 = buf;
  ck.expect_error("overlap on rank 0",
                  [&] { sbn.forward({buf.data(), {2, 3}}, {ck.rank == 0 ? buf.data() + 1 : other.data(), {2, 3}}); },
                  ck.rank == 0 ? "[sync_batch_norm] input and output overlap" : "[sync_batch_norm] rank 0 of");
  ck.expect(buf == buf0 && other == std::vector<float>(6, 777.0f), "overlap on rank 0: nothing written");
  // The communicator is still in step: a normal step after the errors.
  sbn.forward({xl.data(), {1, 3}}, {yl.data(), {1, 3}});
  ck.expect(sbn.num_batches_tracked == 2, "a step after the errors runs");
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Checker ck;
  MPI_Comm_rank(MPI_COMM_WORLD, &ck.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ck.ranks);
  try {
    using O = BatchNorm<float>::Options;
    for (bool empty : {false, true}) {
      const std::string split = empty ? " (one rank empty)" : " (uneven)";
      layer_case<float>(ck, empty, O{}, "float layer" + split);
      layer_case<double>(ck, empty, BatchNorm<double>::Options{}, "double layer" + split);
      layer_case<float>(ck, empty, O{1e-3, std::nullopt, false, true}, "float cumulative no-affine" + split);
      layer_case<float>(ck, empty, O{1e-5, 0.1, true, false}, "float untracked" + split);
      functional_case<float>(ck, empty);
      functional_case<double>(ck, empty);
    }
    if (ck.ranks >= 2) error_cases(ck);
  } catch (const std::exception& e) {
    ck.fail(std::string("unexpected exception: ") + e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int failures = 0, checks = 0;
  double worst = 0;
  MPI_Allreduce(&ck.failures, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&ck.checks, &checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&ck.worst, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (ck.rank == 0)
    std::printf("sync_batch_norm_exact: %d ranks, %d checks, %d failed, worst relative error %.3g\n",
                ck.ranks, checks, failures, worst);
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
