// study/data_parallel.hpp — data-parallel training over the ranks of MPI_COMM_WORLD: the few
// collectives train_run needs (average gradients, agree on the loss, one model everywhere).
// No MPI type appears here: MPI stays in data_parallel.cpp, and a build without MPI still
// links, every call but mpi_built() then throwing normkit::Error that says how to enable it.
#pragma once

#include <string>
#include <vector>

#include "norm_layer.hpp"

namespace study {

// How a run uses the ranks. Off: one process (the ranks, if any, are ignored). Local: each
// rank trains on its slice of every global batch, gradients are averaged over the ranks,
// BatchNorm normalizes with local statistics (PyTorch DDP with BatchNorm2d). Sync: the same
// with SyncBatchNorm, i.e. statistics over the global batch (DDP with SyncBatchNorm).
enum class DataParallel { Off, Local, Sync };
DataParallel parse_data_parallel(const std::string& name);  // "off", "local", "sync"
std::string data_parallel_name(DataParallel dp);              // "off", "local", "sync"

bool mpi_built();  // normkit::sync (MPI) was found at configure time
// Initializes MPI once per process and finalizes it at exit. Works under mpirun and in a
// process started alone (one rank).
void mpi_start();
int world_rank();
int world_size();

// grad = (sum over ranks of grad) / ranks for every parameter, summed in rank order after an
// all-gather, so every rank gets the same bits (MPI_Allreduce does not promise that).
// Gradients marked reduced_over_ranks (SyncBatchNorm's) are only divided by the rank count.
void average_gradients(std::vector<ParamRef<float>>& params);
// The sum over ranks of v, in rank order: the same bits on every rank.
double sum_over_ranks(double v);
// Every rank gets rank 0's values (v must have the same size everywhere).
void broadcast_from_rank0(std::vector<float>& v);
// Throws std::runtime_error on every rank unless v is bitwise the same on every rank.
void check_same_on_all_ranks(const std::vector<float>& v, const std::string& what);

}  // namespace study
