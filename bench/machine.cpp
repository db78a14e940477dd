// machine.cpp — CPU and cache discovery, and the copy kernels that define the floor.
// Cloud VMs often hide /sys/.../cache and report a socket-wide L3 through CPUID; there the LLC
// is taken where copy bandwidth falls from cache speed to memory speed, and the source is said.
#include "machine.hpp"

#include <omp.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include <benchmark/benchmark.h>

namespace nkbench {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

// "32768K" / "1M" -> bytes; 0 when unparsable.
int64_t parse_size(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const char u = end && *end ? *end : ' ';
  const double mult = u == 'K' ? 1024.0 : u == 'M' ? 1048576.0 : u == 'G' ? 1073741824.0 : 1.0;
  return static_cast<int64_t>(v * mult);
}

// Highest-level data/unified cache of cpu0, and the L2, from sysfs; false when absent.
bool sysfs_caches(int64_t& llc, int64_t& l2) {
  int best_level = 0;
  for (int i = 0; i < 16; ++i) {
    const std::string d = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_line(d + "level");
    if (level.empty()) continue;
    const std::string type = read_line(d + "type");
    if (type != "Data" && type != "Unified") continue;
    const int lv = std::atoi(level.c_str());
    const int64_t size = parse_size(read_line(d + "size"));
    if (lv == 2) l2 = size;
    if (lv > best_level) {
      best_level = lv;
      llc = size;
    }
  }
  return best_level > 0 && llc > 0;
}

// The fastest of several copies: what the hierarchy can do, least disturbed by other load.
double best_copy_seconds(const float* src, float* dst, size_t n) {
  std::vector<double> t;
  const double start = now_seconds();
  while (t.size() < 5 || (t.size() < 200 && now_seconds() - start < 0.08)) {
    const double t0 = now_seconds();
    copy_memcpy(src, dst, n, 1);
    benchmark::ClobberMemory();
    t.push_back(now_seconds() - t0);
  }
  return *std::min_element(t.begin(), t.end());
}

// The largest copy footprint (src + dst) still copied at cache speed: bandwidth above the
// geometric mean of the small-footprint and the large-footprint bandwidths. 0 when no knee.
int64_t measured_llc() {
  const std::vector<int64_t> mib = {2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256};
  const size_t max_n = static_cast<size_t>(mib.back()) << 17;  // floats per buffer at 256 MiB total
  std::unique_ptr<float[]> a(new float[max_n]), b(new float[max_n]);
  std::fill(a.get(), a.get() + max_n, 1.0f);
  std::fill(b.get(), b.get() + max_n, 2.0f);
  std::vector<double> bw;
  for (int64_t m : mib) {
    const size_t n = static_cast<size_t>(m) << 17;
    bw.push_back(static_cast<double>(m << 20) / best_copy_seconds(a.get(), b.get(), n));
  }
  const double cache_bw = *std::max_element(bw.begin(), bw.begin() + 5);
  const double mem_bw = std::min(bw[bw.size() - 1], bw[bw.size() - 2]);
  if (cache_bw < 1.5 * mem_bw) return 0;
  const double threshold = std::sqrt(cache_bw * mem_bw);
  int64_t llc = 0;
  for (size_t i = 0; i < mib.size() && bw[i] >= threshold; ++i) llc = mib[i] << 20;
  return llc;
}

// The knee moves between runs on a loaded VM (a 48 MiB footprint copies at cache speed in one
// probe and not in the next); the median of three probes keeps a case's in/out stable.
int64_t median_measured_llc() {
  std::vector<int64_t> knees = {measured_llc(), measured_llc(), measured_llc()};
  std::sort(knees.begin(), knees.end());
  return knees[1];
}

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void copy_memcpy(const float* src, float* dst, size_t n, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads()), t = static_cast<size_t>(omp_get_thread_num());
    const size_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;  // 64-byte boundaries
    const size_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (e > b) std::memcpy(dst + b, src + b, (e - b) * sizeof(float));
  }
}

void copy_stream(const float* src, float* dst, size_t n, int threads) {
#if defined(__SSE2__)
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads()), t = static_cast<size_t>(omp_get_thread_num());
    const size_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;  // 64-byte boundaries
    const size_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    size_t i = b;
    for (; i < e && reinterpret_cast<uintptr_t>(dst + i) % 16 != 0; ++i) dst[i] = src[i];
    for (; i + 4 <= e; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < e; ++i) dst[i] = src[i];
    _mm_sfence();
  }
#else
  copy_memcpy(src, dst, n, threads);
#endif
}

#if defined(__x86_64__)
namespace {
// One thread's chunk [b, e): scalar up to dst's alignment to the store width, whole stores, the
// scalar rest.
__attribute__((target("avx512f"))) void stream_chunk_64(const float* src, float* dst, size_t b, size_t e) {
  size_t i = b;
  for (; i < e && reinterpret_cast<uintptr_t>(dst + i) % 64 != 0; ++i) dst[i] = src[i];
  for (; i + 16 <= e; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  for (; i < e; ++i) dst[i] = src[i];
}
__attribute__((target("avx"))) void stream_chunk_32(const float* src, float* dst, size_t b, size_t e) {
  size_t i = b;
  for (; i < e && reinterpret_cast<uintptr_t>(dst + i) % 32 != 0; ++i) dst[i] = src[i];
  for (; i + 8 <= e; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < e; ++i) dst[i] = src[i];
}
}  // namespace
#endif

void copy_stream_wide(const float* src, float* dst, size_t n, int threads) {
#if defined(__x86_64__)
  static const int width = __builtin_cpu_supports("avx512f") ? 64 : __builtin_cpu_supports("avx") ? 32 : 16;
  if (width == 16) return copy_stream(src, dst, n, threads);
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads()), t = static_cast<size_t>(omp_get_thread_num());
    const size_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;  // 64-byte boundaries
    const size_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (width == 64) {
      stream_chunk_64(src, dst, b, e);
    } else {
      stream_chunk_32(src, dst, b, e);
    }
    _mm_sfence();
  }
#else
  copy_stream(src, dst, n, threads);
#endif
}

void copy_loop(const float* src, float* dst, size_t n, int threads) {
  const int64_t len = static_cast<int64_t>(n);
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
}

Machine probe_machine(int64_t llc_override_bytes) {
  Machine m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m.cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  m.cpus_online = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int64_t llc = 0, l2 = 0;
  const bool from_sysfs = sysfs_caches(llc, l2);
  if (l2 <= 0) l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  m.l2_bytes = l2 > 0 ? l2 : (1 << 20);
  const int64_t cpuid_l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc_override_bytes > 0) {
    m.llc_bytes = llc_override_bytes;
    m.llc_source = "--llc-mb";
  } else if (from_sysfs) {
    m.llc_bytes = llc;
    m.llc_source = "sysfs cpu0/cache";
  } else if (const int64_t knee = median_measured_llc(); knee > 0) {
    m.llc_bytes = knee;
    m.llc_source = "copy-bandwidth knee (sysfs has no cache info; CPUID says " +
                   std::to_string(cpuid_l3 >> 20) + " MiB)";
  } else {
    m.llc_bytes = cpuid_l3 > 0 ? cpuid_l3 : (32 << 20);
    m.llc_source = cpuid_l3 > 0 ? "CPUID via sysconf (no sysfs, no bandwidth knee)" : "default guess";
  }
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  m.date = buf;
  std::ifstream("/proc/loadavg") >> m.load_average;
  return m;
}

}  // namespace nkbench
