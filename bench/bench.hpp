// bench.hpp — the types normkit-bench's translation units share: the cases, the buffers one
// repetition touches, and the Runner each implementation (normkit, libtorch, oneDNN) provides.
// No libtorch or oneDNN header may appear here: each competitor compiles in its own file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nkbench {

enum class Op { BatchNormTrain, BatchNormEval, LayerNorm, InstanceNorm, GroupNorm, RMSNorm, WeightNorm };
// How the activations (x, dy, y, dx) are stored; parameters and statistics stay float32.
enum class DType { F32, BF16, F16 };

struct Case {
  std::string name;
  Op op;
  std::vector<int64_t> shape;
  int64_t groups = 0;    // GroupNorm
  int norm_dims = 0;     // LayerNorm / RMSNorm: how many trailing dims are normalized
  bool affine = true;    // weight (and bias, where the op has one)
  double eps = 1e-5;
  // The same logical (N, C, H, W) tensor held channels-last (NHWC in memory), as PyTorch's
  // memory_format=torch.channels_last. Buffers and compared outputs are in memory order.
  bool channels_last = false;
  DType dtype = DType::F32;

  size_t elem_bytes() const { return dtype == DType::F32 ? 4 : 2; }
  double bytes() const { return static_cast<double>(numel()) * static_cast<double>(elem_bytes()); }
  const char* dtype_name() const { return dtype == DType::F32 ? "float32" : dtype == DType::BF16 ? "bfloat16" : "float16"; }
  int64_t numel() const;
  int64_t batch() const { return shape[0]; }
  int64_t channels() const { return shape[1]; }
  int64_t spatial() const;        // product of shape[2:]
  int64_t inner() const;          // LayerNorm / RMSNorm: product of the normalized dims
  int64_t outer() const { return numel() / inner(); }
  int64_t param_count() const;    // weight / bias / g length (0 when !affine)
  bool has_bias() const { return affine && op != Op::RMSNorm && op != Op::WeightNorm; }
  bool is_batch_norm() const { return op == Op::BatchNormTrain || op == Op::BatchNormEval; }
  std::string shape_str() const;
  std::vector<int64_t> strides() const;  // of the logical shape in memory (row-major or NHWC)
  std::string layout() const;            // "nchw", "nhwc" or "row-major"
};

const std::vector<Case>& all_cases();

// The tensors of one repetition, elements of the case's dtype in its memory order
// (Case::strides()). x and dy are inputs (for WeightNorm: v and dw); y and dx are outputs
// (w and dv).
struct BufferSet {
  void* x = nullptr;
  void* dy = nullptr;
  void* y = nullptr;
  void* dx = nullptr;
};

// Everything an implementation needs to build its runner. Parameters are inputs: a runner
// copies what it mutates (running statistics).
struct Problem {
  const Case* c = nullptr;
  std::vector<BufferSet> sets;
  std::vector<float> weight, bias;              // param_count() each (empty when absent)
  std::vector<float> running_mean, running_var; // BatchNorm: channels() each
};

// Outputs gathered for the correctness check, as float32 in memory order by name:
// "y", "dx", "dweight", "dbias", "running_mean", "running_var".
using Outputs = std::map<std::string, std::vector<float>>;

// One implementation bound to one problem and one thread count.
class Runner {
 public:
  virtual ~Runner() = default;
  // One forward on buffer set `set`. for_backward: keep what backward() needs (autograd
  // graphs, saved statistics); otherwise run the way an inference caller would.
  virtual void forward(int set, bool for_backward) = 0;
  // The backward of the last forward(set, true) on the same set.
  virtual void backward(int set) = 0;
  // What the last calls on `set` produced (copied out; not timed).
  virtual Outputs outputs(int set) = 0;
};

struct Impl {
  std::string name;    // "normkit", "torch", "onednn"
  std::string layout;  // how it holds the activation, e.g. "nchw", "nChw16c"
  std::function<std::unique_ptr<Runner>(const Problem&)> make;
};

// Each returns the implementations it has for the case (oneDNN: one per candidate layout;
// empty when it has no such op). Constructed after the thread count is set.
std::vector<Impl> normkit_impls(const Case& c);
std::vector<Impl> torch_impls(const Case& c);
std::vector<Impl> onednn_impls(const Case& c);

void normkit_set_threads(int n);
void torch_set_threads(int n);
std::string torch_version();
std::string onednn_version();

}  // namespace nkbench
