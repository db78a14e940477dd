// study/idx.cpp — the IDX reader and the Fashion-MNIST loader. gzread reads plain files as
// well as gzip ones; a short read (truncated file) or a zlib error becomes a DataError.
#include "idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace study {

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

void read_exact(gzFile f, const std::string& path, void* dst, size_t bytes, const char* what) {
  size_t done = 0;
  auto* out = static_cast<unsigned char*>(dst);
  while (done < bytes) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, 1u << 30));
    const int got = gzread(f, out + done, chunk);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw DataError("[idx] file=" + path + " is corrupt reading " + what + ": " +
                      (msg ? msg : "zlib error"));
    }
    if (got == 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw DataError("[idx] file=" + path + " is truncated: " + what + " needs " +
                      std::to_string(bytes) + " bytes, got " + std::to_string(done) +
                      (code != Z_OK && msg ? std::string(" (") + msg + ")" : ""));
    }
    done += static_cast<size_t>(got);
  }
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
  if (!std::filesystem::exists(path)) throw DataError("[idx] file=" + path + " does not exist");
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError("[idx] file=" + path + " cannot be opened");
  unsigned char magic[4];
  read_exact(f.get(), path, magic, 4, "the magic number");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != expected_rank) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x", magic[0], magic[1], magic[2], magic[3]);
    throw DataError("[idx] file=" + path + " has magic=0x" + buf + ", expected 0x000008" +
                    (expected_rank < 16 ? "0" : "") + std::to_string(expected_rank) +
                    " (unsigned bytes, rank " + std::to_string(expected_rank) + ")");
  }
  IdxArray out;
  size_t total = 1;
  for (int d = 0; d < expected_rank; ++d) {
    unsigned char b[4];
    read_exact(f.get(), path, b, 4, "the dimensions");
    const uint32_t v = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    if (v == 0 || v > (1u << 28))
      throw DataError("[idx] file=" + path + " has dim" + std::to_string(d) + "=" +
                      std::to_string(v) + ", outside 1..2^28");
    out.dims.push_back(static_cast<int>(v));
    total *= v;
  }
  if (total > (size_t{1} << 32)) throw DataError("[idx] file=" + path + " is too large");
  out.data.resize(total);
  read_exact(f.get(), path, out.data.data(), total, "the data");
  unsigned char extra;
  if (gzread(f.get(), &extra, 1) != 0)
    throw DataError("[idx] file=" + path + " has bytes after the " + std::to_string(total) +
                    " data bytes its header announces");
  return out;
}

namespace {

Dataset make_dataset(const std::string& dir, const std::string& prefix, int limit) {
  IdxArray img = read_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz", 3);
  IdxArray lab = read_idx(dir + "/" + prefix + "-labels-idx1-ubyte.gz", 1);
  if (img.dims[0] != lab.dims[0])
    throw DataError("[idx] file=" + dir + "/" + prefix + "-images-idx3-ubyte.gz has " +
                    std::to_string(img.dims[0]) + " images but the labels file has " +
                    std::to_string(lab.dims[0]));
  for (uint8_t l : lab.data)
    if (l > 9)
      throw DataError("[idx] file=" + dir + "/" + prefix + "-labels-idx1-ubyte.gz has label=" +
                      std::to_string(l) + ", expected 0..9");
  Dataset d;
  d.count = limit > 0 ? std::min(limit, img.dims[0]) : img.dims[0];
  d.height = img.dims[1];
  d.width = img.dims[2];
  const size_t n = static_cast<size_t>(d.count) * d.height * d.width;
  d.images.resize(n);
  for (size_t i = 0; i < n; ++i) d.images[i] = img.data[i] / 255.0f;
  d.labels.assign(lab.data.begin(), lab.data.begin() + d.count);
  return d;
}

}  // namespace

FashionMnist load_fashion_mnist(const std::string& dir, int train_limit, int test_limit) {
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    const std::string path = dir + "/" + name;
    if (!std::filesystem::exists(path))
      throw DataError("[study] file=" + path +
                      " not found: install the Debian package dataset-fashion-mnist "
                      "(apt-get install dataset-fashion-mnist) or pass --data DIR");
  }
  FashionMnist fm{make_dataset(dir, "train", train_limit), make_dataset(dir, "t10k", test_limit)};
  // Standardize both sets with the statistics of the (possibly limited) training set.
  double s = 0, s2 = 0;
  for (float v : fm.train.images) { s += v; s2 += double(v) * v; }
  const double n = static_cast<double>(fm.train.images.size());
  const double mean = s / n, sd = std::sqrt(std::max(s2 / n - mean * mean, 1e-12));
  for (Dataset* d : {&fm.train, &fm.test})
    for (float& v : d->images) v = static_cast<float>((v - mean) / sd);
  return fm;
}

}  // namespace study
