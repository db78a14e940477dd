// study/tests/test_idx.cpp — the IDX reader and the Fashion-MNIST loader on tiny files the
// test writes itself: plain and gzip round trips, truncated and corrupt files (the error
// names the file), and a missing dataset (the error names the Debian package).
#include <gtest/gtest.h>
#include <zlib.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "idx.hpp"

namespace fs = std::filesystem;
using study::DataError;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("normkit_study_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                               uint8_t type = 0x08) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_plain(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_gz(const fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Expects `f` to throw a DataError whose message contains every one of `parts`.
template <class F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "no exception";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

std::vector<uint8_t> ramp(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37) % 256);
  return v;
}

}  // namespace

TEST(Idx, PlainAndGzipRoundTrip) {
  const fs::path dir = temp_dir("roundtrip");
  const std::vector<uint8_t> data = ramp(3 * 4 * 5);
  write_plain(dir / "a.idx", idx_bytes({3, 4, 5}, data));
  write_gz(dir / "a.idx.gz", idx_bytes({3, 4, 5}, data));
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    const study::IdxArray a = study::read_idx((dir / name).string(), 3);
    EXPECT_EQ(a.dims, (std::vector<int>{3, 4, 5})) << name;
    EXPECT_EQ(a.data, data) << name;
  }
  fs::remove_all(dir);
}

TEST(Idx, TruncatedFileNamesTheFile) {
  const fs::path dir = temp_dir("truncated");
  std::vector<uint8_t> bytes = idx_bytes({10, 2, 2}, ramp(40));
  bytes.resize(bytes.size() - 7);  // a short data section
  write_gz(dir / "short.gz", bytes);
  expect_error([&] { study::read_idx((dir / "short.gz").string(), 3); },
               {"[idx]", (dir / "short.gz").string(), "truncated", "40 bytes"});
  // A gzip stream cut in the middle (the file itself truncated on disk).
  write_gz(dir / "full.gz", idx_bytes({100, 10, 10}, ramp(10000)));
  std::vector<uint8_t> gz = read_all(dir / "full.gz");
  gz.resize(gz.size() / 2);
  write_plain(dir / "cut.gz", gz);
  expect_error([&] { study::read_idx((dir / "cut.gz").string(), 3); },
               {"[idx]", (dir / "cut.gz").string()});
  // A header cut short.
  write_plain(dir / "header", {0, 0, 8});
  expect_error([&] { study::read_idx((dir / "header").string(), 3); },
               {(dir / "header").string(), "magic number"});
  fs::remove_all(dir);
}

TEST(Idx, CorruptFilesNameTheFile) {
  const fs::path dir = temp_dir("corrupt");
  write_gz(dir / "float.gz", idx_bytes({2, 2, 2}, ramp(8), 0x0D));  // float data, not bytes
  expect_error([&] { study::read_idx((dir / "float.gz").string(), 3); },
               {(dir / "float.gz").string(), "magic=0x00000d03", "expected 0x00000803"});
  write_gz(dir / "rank.gz", idx_bytes({8}, ramp(8)));  // labels where images are expected
  expect_error([&] { study::read_idx((dir / "rank.gz").string(), 3); },
               {(dir / "rank.gz").string(), "magic=0x00000801"});
  write_gz(dir / "long.gz", [] { auto b = idx_bytes({2, 2, 2}, ramp(8)); b.push_back(1); return b; }());
  expect_error([&] { study::read_idx((dir / "long.gz").string(), 3); },
               {(dir / "long.gz").string(), "bytes after"});
  write_gz(dir / "zero.gz", idx_bytes({0, 28, 28}, {}));
  expect_error([&] { study::read_idx((dir / "zero.gz").string(), 3); },
               {(dir / "zero.gz").string(), "dim0=0"});
  // Valid gzip header, garbage deflate data.
  std::vector<uint8_t> gz = read_all(dir / "float.gz");
  for (size_t i = 10; i < gz.size(); ++i) gz[i] = static_cast<uint8_t>(0xFF ^ (i * 13));
  write_plain(dir / "garbage.gz", gz);
  expect_error([&] { study::read_idx((dir / "garbage.gz").string(), 3); },
               {"[idx]", (dir / "garbage.gz").string()});
  fs::remove_all(dir);
}

TEST(Idx, MissingDatasetNamesThePackage) {
  const fs::path dir = temp_dir("missing");
  expect_error([&] { study::load_fashion_mnist(dir.string()); },
               {"dataset-fashion-mnist", (dir / "train-images-idx3-ubyte.gz").string()});
  expect_error([&] { study::read_idx((dir / "nope.gz").string(), 1); },
               {(dir / "nope.gz").string(), "does not exist"});
  fs::remove_all(dir);
}

TEST(Idx, LoadsATinyFashionMnistAndStandardizes) {
  const fs::path dir = temp_dir("tiny");
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_bytes({6, 3, 3}, ramp(54)));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_bytes({6}, {0, 1, 2, 3, 4, 9}, 0x08));
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({2, 3, 3}, ramp(18)));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({2}, {5, 6}));
  const study::FashionMnist fm = study::load_fashion_mnist(dir.string(), 4, 0);
  EXPECT_EQ(fm.train.count, 4);
  EXPECT_EQ(fm.train.height, 3);
  EXPECT_EQ(fm.test.count, 2);
  EXPECT_EQ(fm.train.labels, (std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(fm.test.labels, (std::vector<uint8_t>{5, 6}));
  double s = 0, s2 = 0;
  for (float v : fm.train.images) { s += v; s2 += double(v) * v; }
  const double n = static_cast<double>(fm.train.images.size());
  EXPECT_NEAR(s / n, 0.0, 1e-5);
  EXPECT_NEAR(s2 / n, 1.0, 1e-4);
  // Labels beyond 9 and image/label count mismatches are errors.
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({2}, {5, 12}));
  expect_error([&] { study::load_fashion_mnist(dir.string()); }, {"t10k-labels", "label=12"});
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({3}, {5, 6, 7}));
  expect_error([&] { study::load_fashion_mnist(dir.string()); }, {"t10k-images", "2 images", "3"});
  fs::remove_all(dir);
}
