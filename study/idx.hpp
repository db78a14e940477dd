// study/idx.hpp — reads IDX files (the MNIST format: big-endian magic, dims, uint8 data),
// gzip-compressed or not, through zlib. Every error names the file, so a broken or missing
// dataset is diagnosed from the message alone.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace study {

struct IdxArray {
  std::vector<int> dims;       // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;   // row-major, product(dims) bytes
};

// Thrown for unreadable, truncated or malformed files: "[idx] file=PATH ...".
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads an IDX file of unsigned bytes (type code 0x08) with `expected_rank` dimensions.
IdxArray read_idx(const std::string& path, int expected_rank);

// Fashion-MNIST (or MNIST) images scaled to float, standardized with the training set's
// mean and standard deviation (0.2860, 0.3530 for Fashion-MNIST, computed at load).
struct Dataset {
  int count = 0, height = 0, width = 0;
  std::vector<float> images;   // [count, 1, height, width]
  std::vector<uint8_t> labels; // [count], 0..9
};

struct FashionMnist {
  Dataset train, test;
};

// Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from `dir`. A missing file raises
// a DataError that names the Debian package to install (dataset-fashion-mnist).
// train_limit / test_limit > 0 keep only the first that many examples.
FashionMnist load_fashion_mnist(const std::string& dir, int train_limit = 0, int test_limit = 0);

}  // namespace study
