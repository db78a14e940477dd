// sync_main.cpp — an outside program on the installed normkit::sync: SyncBatchNorm over
// MPI_COMM_WORLD must match BatchNorm on the same batch. Run as one process (or under mpiexec,
// every rank with the same data); built by cmake/CMakeLists.txt when the sync component exists.
#include <normkit/normkit.hpp>
#include <normkit/sync_batch_norm.hpp>  // includes <mpi.h>: normkit::sync defines NORMKIT_WITH_MPI

#include <cmath>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const normkit::Shape shape{4, 3, 5};
  std::vector<float> x(60), y(60), want(60);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7) % 11) - 3.5f + 0.1f * float(i % 3);

  normkit::SyncBatchNorm<float> sync(3, MPI_COMM_WORLD);
  sync.forward({x.data(), shape}, {y.data(), shape});
  normkit::BatchNorm<float> local(3);
  local.forward({x.data(), shape}, {want.data(), shape});
  int rc = 0;
  for (size_t i = 0; i < y.size(); ++i)
    if (std::fabs(y[i] - want[i]) > 1e-5f) {  // every rank has the same data: same statistics
      std::printf("consumer: SyncBatchNorm y[%zu] = %g, BatchNorm %g\n", i, y[i], want[i]);
      rc = 1;
      break;
    }
  if (rc == 0) std::printf("consumer: normkit::sync SyncBatchNorm on %d rank(s) ok\n", ranks);
  MPI_Finalize();
  return rc;
}
