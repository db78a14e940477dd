// report.cpp — the header (machine, date, method), the fixed-width table and the JSON file.
// Plain printf and hand-written JSON: the fields are few and flat, a JSON library is not worth
// its compile time.
#include "report.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace nkbench {
namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) o += ch;
  }
  return o;
}

std::string ratio(double r) {
  if (r <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2fx", r);
  return b;
}

}  // namespace

void print_header(const RunInfo& i) {
  const Machine& m = i.machine;
  std::printf("normkit-bench: normkit vs PyTorch %s (libtorch CPU kernels) vs oneDNN %s, float32 (_bf16/_f16 cases: that storage, float32 parameters)\n",
              i.torch_version.c_str(), i.onednn_version.c_str());
  std::printf("date:     %s\n", m.date.c_str());
  std::printf("command:  %s\n", i.command.c_str());
  std::printf("cpu:      %s, %d cpus online\n", m.cpu.c_str(), m.cpus_online);
  std::printf("load:     %.2f (1-minute average at start)%s\n", m.load_average,
              m.load_average > m.cpus_online ? "  WARNING: machine busy, timings are not trustworthy" : "");
  std::printf("caches:   LLC %.1f MiB (%s), L2 %.1f MiB per core\n", m.llc_bytes / 1048576.0,
              m.llc_source.c_str(), m.l2_bytes / 1048576.0);
  std::string th;
  for (int t : i.threads) {
    if (!th.empty()) th += ',';
    th += std::to_string(t);
  }
  std::printf("threads:  %s; median of up to %d reps after %d warm-up (stop after %.2f s once 5 are done)\n",
              th.c_str(), i.max_reps, i.warmup, i.budget_s);
  std::printf("floor:    bytes the op must move (DESIGN.md 4; S = activation bytes) / bandwidth of a plain copy\n"
              "          on the same buffers at the same thread count, timed in the same run (impl 'floor').\n"
              "cache:    'in' when the forward footprint (x and y, all rotated sets) fits in the LLC.\n"
              "GB/s:     floor bytes / time.   vs torch, vs onednn: their time / normkit's time.\n"
              "onednn:   fastest of its layouts (short trial each); BN does not update running stats there.\n\n");
}

void print_table_head() {
  std::printf("%-12s %-14s %-7s %3s %-5s %-5s %-7s %-21s %9s %7s %6s %8s %8s\n", "case", "shape", "dir", "thr",
              "cache", "floor", "impl", "layout", "ms", "GB/s", "floor%", "vs torch", "vs onednn");
  std::fflush(stdout);
}

void print_row(const Row& r) {
  std::printf("%-12s %-14s %-7s %3d %-5s %-5s %-7s %-21s %9.3f %7.1f %5.0f%% %8s %8s\n", r.case_name.c_str(),
              r.shape.c_str(), r.direction.c_str(), r.threads, r.in_cache ? "in" : "out", r.floor_bytes.c_str(),
              r.impl.c_str(), r.layout.c_str(), r.median_ms, r.gbps, 100.0 * r.floor_fraction,
              ratio(r.vs_torch).c_str(), ratio(r.vs_onednn).c_str());
  std::fflush(stdout);
}

bool write_json(const std::string& path, const RunInfo& i, const std::vector<Row>& rows) {
  std::ostringstream o;
  const Machine& m = i.machine;
  o << "{\n  \"machine\": {\"cpu\": \"" << escape(m.cpu) << "\", \"cpus_online\": " << m.cpus_online
    << ", \"llc_bytes\": " << m.llc_bytes << ", \"llc_source\": \"" << escape(m.llc_source)
    << "\", \"l2_bytes\": " << m.l2_bytes << ", \"load_average\": " << m.load_average << "},\n";
  o << "  \"date\": \"" << escape(m.date) << "\",\n  \"command\": \"" << escape(i.command) << "\",\n";
  o << "  \"torch_version\": \"" << escape(i.torch_version) << "\", \"onednn_version\": \""
    << escape(i.onednn_version) << "\",\n";
  o << "  \"max_reps\": " << i.max_reps << ", \"warmup\": " << i.warmup << ", \"budget_s\": " << i.budget_s
    << ",\n  \"results\": [\n";
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    o << "    {\"case\": \"" << r.case_name << "\", \"shape\": \"" << r.shape << "\", \"direction\": \""
      << r.direction << "\", \"threads\": " << r.threads << ", \"cache\": \"" << (r.in_cache ? "in" : "out")
      << "\", \"floor_bytes\": \"" << r.floor_bytes << "\", \"impl\": \"" << r.impl << "\", \"layout\": \""
      << escape(r.layout) << "\", \"median_ms\": " << r.median_ms << ", \"min_ms\": " << r.min_ms
      << ", \"reps\": " << r.reps << ", \"buffer_sets\": " << r.sets << ", \"gbps\": " << r.gbps
      << ", \"floor_fraction\": " << r.floor_fraction;
    if (r.vs_torch > 0) o << ", \"speedup_vs_torch\": " << r.vs_torch;
    if (r.vs_onednn > 0) o << ", \"speedup_vs_onednn\": " << r.vs_onednn;
    o << "}" << (k + 1 < rows.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  std::ofstream f(path);
  f << o.str();
  if (!f) {
    std::fprintf(stderr, "[normkit-bench] cannot write --json file=%s\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace nkbench
