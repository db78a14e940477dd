// machine.hpp — what the bench must know about the machine it measures: CPU, cache sizes
// (sysfs first; on VMs without it, the last-level cache is located from copy bandwidth), the
// date, and the plain copy kernels whose bandwidth defines every case's floor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nkbench {

struct Machine {
  std::string cpu;         // "model name" from /proc/cpuinfo
  int cpus_online = 1;
  int64_t llc_bytes = 0;   // last-level cache used for the in-cache / out-of-cache split
  std::string llc_source;  // how llc_bytes was found
  int64_t l2_bytes = 0;    // per core; sizes the buffer rotation
  std::string date;        // local time of the run
  double load_average = 0; // 1-minute load when probed: above cpus_online, timings are suspect
};

// llc_override_bytes > 0 skips detection.
Machine probe_machine(int64_t llc_override_bytes);

// dst = src with `threads` OpenMP threads over contiguous static chunks: glibc's memcpy on
// each chunk, or a plain element loop. The fastest of these and the streaming copies below
// defines the floor.
void copy_memcpy(const float* src, float* dst, size_t n, int threads);
void copy_loop(const float* src, float* dst, size_t n, int threads);
// Non-temporal stores (no read of dst into the cache first): the copy that wins out of cache.
void copy_stream(const float* src, float* dst, size_t n, int threads);
// copy_stream with the widest non-temporal store the CPU has (64 bytes with AVX-512, 32 with
// AVX): a whole line per store. On a Xeon with AVX-512 it ran 2-6% faster than 16-byte
// streaming stores, and oneDNN's BatchNorm eval (whole-line stores) had measured above the
// 16-byte floor (bench, 2026-11-29).
void copy_stream_wide(const float* src, float* dst, size_t n, int threads);

double now_seconds();

}  // namespace nkbench
