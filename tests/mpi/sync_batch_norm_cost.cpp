// sync_batch_norm_cost.cpp — `mpiexec -np 2 normkit_sync_cost [--reps N]`: one training step of
// SyncBatchNorm vs local BatchNorm on 32x256x14x14 float per rank, interleaved in one run, plus
// the bare all-gathers and the bytes each rank sends. Prints medians and minima; asserts nothing.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "normkit/normkit.hpp"
#include "normkit/sync_batch_norm.hpp"
#include "sync_test_util.hpp"

namespace {
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double fastest(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }

// Seconds of f() on this rank, all ranks started together by a barrier.
template <class F>
double timed(F&& f) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The slowest rank's value: a synchronized step finishes when its last rank does.
double max_over_ranks(double v) {
  double m = 0;
  MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1, reps = 30;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
  const int64_t N = 32, C = 256, H = 14, W = 14, n = N * C * H * W;
  const normkit::Shape shape{N, C, H, W};
  const auto x = sync_test::random_vec<float>(n, 1 + static_cast<uint64_t>(rank), 1.0, 2.0);
  const auto dy = sync_test::random_vec<float>(n, 100 + static_cast<uint64_t>(rank));
  std::vector<float> y(n), dx(n);
  normkit::BatchNorm<float> local(C);
  normkit::SyncBatchNorm<float> synced(C, MPI_COMM_WORLD);
  const auto step = [&](auto& layer) {
    layer.forward({x.data(), shape}, {y.data(), shape});
    layer.backward({dy.data(), shape}, {x.data(), shape}, {dx.data(), shape});
  };
  // The bare exchanges: 1 + 3C doubles forward, 1 + 2C backward (a status value leads each).
  std::vector<double> fwd(1 + 3 * C), bwd(1 + 2 * C), fwd_all(fwd.size() * ranks), bwd_all(bwd.size() * ranks);
  const auto exchanges = [&] {
    MPI_Allgather(fwd.data(), int(fwd.size()), MPI_DOUBLE, fwd_all.data(), int(fwd.size()), MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allgather(bwd.data(), int(bwd.size()), MPI_DOUBLE, bwd_all.data(), int(bwd.size()), MPI_DOUBLE, MPI_COMM_WORLD);
  };
  for (int i = 0; i < 3; ++i) step(local), step(synced), exchanges();  // warm-up
  std::vector<double> t_local, t_sync, t_comm;
  for (int i = 0; i < reps; ++i) {  // interleaved, so drift on a shared machine hits all three
    t_local.push_back(max_over_ranks(timed([&] { step(local); })));
    t_sync.push_back(max_over_ranks(timed([&] { step(synced); })));
    t_comm.push_back(max_over_ranks(timed(exchanges)));
  }
  const double ml = median(t_local), ms = median(t_sync), mc = median(t_comm);
  const double sent = double(fwd.size() + bwd.size()) * sizeof(double);
  const double received = sent * (ranks - 1);
  const double activation = double(n) * sizeof(float);
  if (rank == 0) {
    std::printf("sync_batch_norm_cost: %d ranks, local batch %lldx%lldx%lldx%lld float per rank, %d reps, "
                "medians of the slowest rank\n",
                ranks, (long long)N, (long long)C, (long long)H, (long long)W, reps);
    std::printf("  bytes per rank per step: sent %.0f (forward %zu + backward %zu doubles), received %.0f; "
                "activation %.0f bytes (%.2e of it)\n",
                sent, fwd.size(), bwd.size(), received, activation, sent / activation);
    std::printf("                             median ms   fastest ms\n");
    std::printf("  local BatchNorm step      %9.3f    %9.3f\n", ml * 1e3, fastest(t_local) * 1e3);
    std::printf("  SyncBatchNorm step        %9.3f    %9.3f   (median x%.3f of local)\n", ms * 1e3,
                fastest(t_sync) * 1e3, ms / ml);
    std::printf("  the two all-gathers alone %9.3f    %9.3f\n", mc * 1e3, fastest(t_comm) * 1e3);
  }
  MPI_Finalize();
  return 0;
}
