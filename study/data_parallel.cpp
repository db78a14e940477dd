// study/data_parallel.cpp — the MPI side of data-parallel training. Every reduction is an
// all-gather followed by a sum in rank order, as SyncBatchNorm does, so that all ranks end
// each step with bitwise the same parameters; the check at the end of a run verifies it.
#include "data_parallel.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "normkit/tensor.hpp"

#ifdef NORMKIT_WITH_MPI
#include <mpi.h>
#endif

namespace study {

DataParallel parse_data_parallel(const std::string& name) {
  if (name == "off" || name == "none") return DataParallel::Off;
  if (name == "local") return DataParallel::Local;
  if (name == "sync") return DataParallel::Sync;
  throw normkit::Error("[study] dp=" + name + " is not one of off, local, sync");
}

std::string data_parallel_name(DataParallel dp) {
  switch (dp) {
    case DataParallel::Local: return "local";
    case DataParallel::Sync: return "sync";
    case DataParallel::Off: break;
  }
  return "off";
}

#ifdef NORMKIT_WITH_MPI

bool mpi_built() { return true; }

namespace {

void finalize_at_exit() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("[study] MPI call failed: ") + what);
}

uint64_t fnv1a(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

}  // namespace

void mpi_start() {
  int started = 0;
  MPI_Initialized(&started);
  if (started) return;
  check_mpi(MPI_Init(nullptr, nullptr), "MPI_Init");
  std::atexit(finalize_at_exit);
}

int world_rank() {
  mpi_start();
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  mpi_start();
  int p = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  return p;
}

void average_gradients(std::vector<ParamRef<float>>& params) {
  const int ranks = world_size();
  const float inv = 1.0f / static_cast<float>(ranks);  // exact for 1, 2, 4, ...; else rounded once
  size_t n = 0;
  for (const ParamRef<float>& p : params)
    if (!p.reduced_over_ranks) n += p.size;
  // grad = (g_0 + g_1 + ... + g_{P-1}) * (1/P), the sum left to right in rank order.
  static thread_local std::vector<float> mine, all;
  mine.resize(n);
  all.resize(n * static_cast<size_t>(ranks));
  size_t at = 0;
  for (const ParamRef<float>& p : params)
    if (!p.reduced_over_ranks) {
      std::copy_n(p.grad, p.size, mine.data() + at);
      at += p.size;
    }
  check_mpi(MPI_Allgather(mine.data(), static_cast<int>(n), MPI_FLOAT, all.data(), static_cast<int>(n),
                          MPI_FLOAT, MPI_COMM_WORLD),
            "MPI_Allgather (gradients)");
  for (size_t i = 0; i < n; ++i) {
    float s = all[i];
    for (int r = 1; r < ranks; ++r) s += all[static_cast<size_t>(r) * n + i];
    mine[i] = s;
  }
  at = 0;
  for (ParamRef<float>& p : params) {
    if (p.reduced_over_ranks) {
      for (size_t j = 0; j < p.size; ++j) p.grad[j] *= inv;  // already the sum over the ranks
    } else {
      for (size_t j = 0; j < p.size; ++j) p.grad[j] = mine[at + j] * inv;
      at += p.size;
    }
  }
}

double sum_over_ranks(double v) {
  std::vector<double> all(static_cast<size_t>(world_size()));
  check_mpi(MPI_Allgather(&v, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD),
            "MPI_Allgather (sum)");
  double s = 0;
  for (double x : all) s += x;
  return s;
}

void broadcast_from_rank0(std::vector<float>& v) {
  check_mpi(MPI_Bcast(v.data(), static_cast<int>(v.size()), MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast");
}

void check_same_on_all_ranks(const std::vector<float>& v, const std::string& what) {
  const uint64_t mine[2] = {v.size(), fnv1a(v.data(), v.size() * sizeof(float))};
  std::vector<uint64_t> all(2 * static_cast<size_t>(world_size()));
  check_mpi(MPI_Allgather(mine, 2, MPI_UINT64_T, all.data(), 2, MPI_UINT64_T, MPI_COMM_WORLD),
            "MPI_Allgather (checksums)");
  for (size_t r = 1; r < all.size() / 2; ++r)
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
      throw std::runtime_error("[study] " + what + " differ between rank 0 and rank " + std::to_string(r) +
                               " (checksums of " + std::to_string(all[0]) + " and " +
                               std::to_string(all[2 * r]) + " floats differ)");
}

#else  // no MPI: the feature is absent, and says how to get it

bool mpi_built() { return false; }

namespace {
[[noreturn]] void no_mpi() {
  throw normkit::Error(
      "[study] data-parallel training (--dp local|sync, --sync-bn) needs MPI, and this normkit "
      "was built without it: apt-get install libopenmpi-dev openmpi-bin (scripts/install-deps.sh), "
      "reconfigure, rebuild, then run under mpirun");
}
}  // namespace

void mpi_start() { no_mpi(); }
int world_rank() { no_mpi(); }
int world_size() { no_mpi(); }
void average_gradients(std::vector<ParamRef<float>>&) { no_mpi(); }
double sum_over_ranks(double) { no_mpi(); }
void broadcast_from_rank0(std::vector<float>&) { no_mpi(); }
void check_same_on_all_ranks(const std::vector<float>&, const std::string&) { no_mpi(); }

#endif

}  // namespace study
