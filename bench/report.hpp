// report.hpp — one result row of normkit-bench, printed as a fixed-width table line as soon as
// it is measured and written, all rows together, as JSON (--json FILE) with the machine.
// The table and the JSON carry the same fields, so a README table can be rebuilt from either.
#pragma once

#include <string>
#include <vector>

#include "machine.hpp"

namespace nkbench {

struct Row {
  std::string case_name, shape, direction;  // "fwd" or "fwd+bwd"
  int threads = 1;
  bool in_cache = true;
  std::string floor_bytes;                  // "2S", "3S+5S", ...
  std::string impl, layout;                 // impl "floor" is the copy-kernel floor itself
  double median_ms = 0, min_ms = 0;
  int reps = 0, sets = 1;
  double gbps = 0;                          // floor bytes / median time
  double floor_fraction = 0;                // floor time / median time
  double vs_torch = 0, vs_onednn = 0;       // normkit rows: competitor time / normkit time (0: n/a)
};

struct RunInfo {
  Machine machine;
  std::string command, torch_version, onednn_version;
  std::vector<int> threads;
  int max_reps = 0, warmup = 0;
  double budget_s = 0;
};

void print_header(const RunInfo& info);
void print_table_head();
void print_row(const Row& r);
// Returns false (and says why on stderr) when the file cannot be written.
bool write_json(const std::string& path, const RunInfo& info, const std::vector<Row>& rows);

}  // namespace nkbench
