// main.cpp — normkit-bench's driver: options; the check of every implementation against the
// oracle on every case and thread count, before anything is timed; then per case, direction and
// thread count, the copy floor and each implementation, as medians over rotated buffer sets.
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>

#include "bench.hpp"
#include "machine.hpp"
#include "problem.hpp"
#include "report.hpp"

namespace nkbench {
namespace {

struct Options {
  std::string cases, threads = "1,2", json;
  int reps = 50, warmup = 2;
  double budget = 0.3, llc_mb = 0;
  bool check_only = false, list = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void set_threads(int t) {
  normkit_set_threads(t);
  torch_set_threads(t);
  omp_set_num_threads(t);  // oneDNN (OpenMP runtime) reads this when primitives are created
}

std::vector<Impl> impls_for(const Case& c) {
  std::vector<Impl> all = normkit_impls(c);
  for (auto& i : torch_impls(c)) all.push_back(i);
  for (auto& i : onednn_impls(c)) all.push_back(i);
  return all;
}

// DESIGN.md 5 promises bitwise-identical results for any thread count. The test suite owns
// that promise; the bench only reports what it sees (a note, not a failure).
void note_determinism(const Case& c, int threads, const Outputs& got, Outputs& first) {
  if (first.empty()) {
    first = got;
    return;
  }
  for (const auto& [k, v] : first) {
    auto g = got.find(k);
    if (g == got.end() || g->second.size() != v.size()) continue;
    for (size_t i = 0; i < v.size(); ++i) {
      if (std::memcmp(&v[i], &g->second[i], sizeof(float)) != 0) {
        std::printf("note: normkit %s output '%s' differs bitwise between thread counts (threads=%d index=%zu: "
                    "%.9g vs %.9g)\n", c.name.c_str(), k.c_str(), threads, i, v[i], g->second[i]);
        break;
      }
    }
  }
}

// ---- phase 1: correctness --------------------------------------------------------------
// A competitor (torch, oneDNN) that disagrees with the oracle is not timed in that direction
// and its disagreement is printed: a wrong answer has no speed. Keys: "case|impl|layout|dir".
using Excluded = std::set<std::string>;
std::string exclusion_key(const Case& c, const Impl& impl, bool backward) {
  return c.name + "|" + impl.name + "|" + impl.layout + (backward ? "|fwd+bwd" : "|fwd");
}

// A fresh runner per implementation and thread count: forward alone (y, and BatchNorm's
// running statistics after exactly one update), then forward+backward (y, dx, dweight, dbias).
// Returns how many normkit runs disagree (fatal); competitors' disagreements go to `excluded`.
int check_all(const std::vector<const Case*>& cases, const std::vector<int>& threads, Excluded& excluded) {
  int failures = 0;
  for (const Case* c : cases) {
    const double t0 = now_seconds();
    auto prob = make_problem(*c, 1);
    const Outputs want = reference_outputs(prob->p);
    int checked = 0;
    Outputs normkit_first;
    for (int t : threads) {
      set_threads(t);
      for (const Impl& impl : impls_for(*c)) {
        std::string err;
        try {
          auto r = impl.make(prob->p);
          r->forward(0, false);
          Outputs got = r->outputs(0);
          std::vector<std::string> keys = {"y"};
          for (const char* k : {"running_mean", "running_var"}) {
            if (got.count(k)) keys.push_back(k);
          }
          err = compare_outputs(got, want, keys, tolerance(*c));
          if (!err.empty()) {
            err = "forward: " + err;
            excluded.insert(exclusion_key(*c, impl, false));
          }
          excluded.insert(exclusion_key(*c, impl, true));  // until forward+backward agrees
          if (err.empty()) {
            r->forward(0, true);
            r->backward(0);
            got = r->outputs(0);
            err = compare_outputs(got, want, {"y", "dx", "dweight", "dbias"}, tolerance(*c));
            if (!err.empty()) err = "forward+backward: " + err;
            else excluded.erase(exclusion_key(*c, impl, true));
          }
          if (err.empty() && impl.name == "normkit") note_determinism(*c, t, got, normkit_first);
        } catch (const std::exception& e) {  // e.g. a dtype the competitor lacks
          err = std::string("threw: ") + e.what();
          const std::string what = err.substr(0, err.find('\n'));
          err = what.size() > 160 ? what.substr(0, 160) + "..." : what;
          excluded.insert(exclusion_key(*c, impl, false));
          excluded.insert(exclusion_key(*c, impl, true));
        }
        ++checked;
        if (!err.empty() && impl.name == "normkit") {
          ++failures;
          std::fprintf(stderr, "[normkit-bench] check failed: case=%s impl=%s layout=%s threads=%d %s\n",
                       c->name.c_str(), impl.name.c_str(), impl.layout.c_str(), t, err.c_str());
        } else if (!err.empty()) {
          std::printf("note: %s (%s) disagrees with the reference on %s, threads=%d, %s: not timed there\n",
                      impl.name.c_str(), impl.layout.c_str(), c->name.c_str(), t, err.c_str());
        }
      }
    }
    std::printf("check %-12s %-14s %2d implementation runs against the reference  %.1f s\n", c->name.c_str(),
                c->shape_str().c_str(), checked, now_seconds() - t0);
    std::fflush(stdout);
  }
  return failures;
}

// ---- phase 2: timing --------------------------------------------------------------------
struct Timing {
  std::vector<double> s;  // seconds, one per timed repetition
  double median() const {
    std::vector<double> v = s;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  double min() const { return s.empty() ? 0 : *std::min_element(s.begin(), s.end()); }
};

// warm-up, then reps until max_reps, or until `budget` seconds once 5 are done.
void time_reps(Timing& t, const std::function<void(int)>& once, int warmup, int max_reps, double budget) {
  for (int w = 0; w < warmup; ++w) once(w);
  const double start = now_seconds();
  for (int r = 0; r < max_reps; ++r) {
    if (r >= std::min(5, max_reps) && now_seconds() - start > budget) break;
    const double t0 = now_seconds();
    once(r);
    t.s.push_back(now_seconds() - t0);
  }
}

struct Group {
  const Case* c;
  bool backward;
  int threads;
  int sets;
  bool in_cache;
};

// Bytes the op must move, in units of S (DESIGN.md 4). Only BatchNorm training reads its
// tensor twice when it does not fit in cache; every other domain (row, group) fits.
std::pair<int, std::string> floor_units(const Group& g) {
  const bool bn_out = g.c->op == Op::BatchNormTrain && !g.in_cache;
  const int fwd = bn_out ? 3 : 2, bwd = bn_out ? 5 : 3;
  if (!g.backward) return {fwd, std::to_string(fwd) + "S"};
  return {fwd + bwd, std::to_string(fwd) + "S+" + std::to_string(bwd) + "S"};
}

std::vector<Row> time_group(const Group& g, const Problem& p, const Options& o, const Excluded& excluded) {
  const Case& c = *g.c;
  const double S = c.bytes();
  const size_t n = static_cast<size_t>((S + 3) / 4);  // the copy kernels move floats
  set_threads(g.threads);

  using Once = std::function<void(int)>;
  auto copy_with = [&](void (*kernel)(const float*, float*, size_t, int)) -> Once {
    return [&, kernel](int r) {
      const BufferSet& s = p.sets[static_cast<size_t>(r % g.sets)];
      kernel(static_cast<const float*>(s.x), static_cast<float*>(s.y), n, g.threads);
      benchmark::DoNotOptimize(s.y);
      benchmark::ClobberMemory();
    };
  };
  auto run_with = [&](Runner* r) -> Once {
    return [&, r](int rep) {
      const int k = rep % g.sets;
      if (g.backward) {
        r->forward(k, true);
        r->backward(k);
      } else {
        r->forward(k, false);
      }
      benchmark::DoNotOptimize(p.sets[static_cast<size_t>(k)].y);
      benchmark::ClobberMemory();
    };
  };

  // Contenders: the two copy kernels (the floor) and one runner per library. Several
  // candidates (oneDNN layouts) get a short trial each; the fastest stays.
  struct Contender {
    std::string impl, layout;
    Once once;
    Timing t;
  };
  std::vector<Contender> cs = {{"copy", "memcpy", copy_with(copy_memcpy), {}},
                               {"copy", "plain loop", copy_with(copy_loop), {}},
                               {"copy", "streaming", copy_with(copy_stream), {}},
                               {"copy", "streaming, whole lines", copy_with(copy_stream_wide), {}}};
  std::vector<std::unique_ptr<Runner>> keep;
  for (auto list : {normkit_impls(c), torch_impls(c), onednn_impls(c)}) {
    std::erase_if(list, [&](const Impl& i) { return excluded.count(exclusion_key(c, i, g.backward)) > 0; });
    if (list.empty()) continue;
    size_t best = 0;
    std::vector<std::unique_ptr<Runner>> runners;
    for (const Impl& impl : list) runners.push_back(impl.make(p));
    if (list.size() > 1) {
      double best_t = 0;
      for (size_t i = 0; i < list.size(); ++i) {
        Timing trial;
        time_reps(trial, run_with(runners[i].get()), std::max(o.warmup, g.sets), 5, o.budget / 4);
        if (i == 0 || trial.median() < best_t) best_t = trial.median(), best = i;
      }
    }
    keep.push_back(std::move(runners[best]));  // the other layouts' copies are freed here
    cs.push_back({list[best].name, list[best].layout, run_with(keep.back().get()), {}});
  }

  // Rounds: each contender in turn re-warms (so in-cache cases start in cache) and then runs
  // a few timed repetitions. Interleaving spreads any disturbance from the rest of the
  // machine over all contenders alike instead of charging it to whoever ran at that moment.
  const int per_round = 3;
  const int min_reps = std::min(5, o.reps);
  const double start = now_seconds();
  for (int round = 0;; ++round) {
    bool done = true;
    for (Contender& ct : cs) {
      if (static_cast<int>(ct.t.s.size()) >= o.reps) continue;
      done = false;
      const int warm = round == 0 ? std::max(o.warmup, g.sets) : 1;
      for (int w = 0; w < warm; ++w) ct.once(w);
      for (int r = 0; r < per_round && static_cast<int>(ct.t.s.size()) < o.reps; ++r) {
        const double t0 = now_seconds();
        ct.once(r + 1);
        ct.t.s.push_back(now_seconds() - t0);
      }
    }
    bool enough = true;
    for (const Contender& ct : cs) enough = enough && static_cast<int>(ct.t.s.size()) >= min_reps;
    if (done || (enough && now_seconds() - start > o.budget * static_cast<double>(cs.size()))) break;
  }
  constexpr size_t kCopies = 4;  // the floor: the fastest of the copy kernels
  struct Measured {
    std::string impl, layout;
    Timing t;
  };
  std::vector<Measured> measured;
  for (size_t i = kCopies; i < cs.size(); ++i) measured.push_back({cs[i].impl, cs[i].layout, cs[i].t});

  size_t fastest = 0;
  for (size_t i = 1; i < kCopies; ++i)
    if (cs[i].t.median() < cs[fastest].t.median()) fastest = i;
  const Timing& cp = cs[fastest].t;
  const double copy_bw = 2.0 * S / cp.median();  // read S + write S
  const auto [units, label] = floor_units(g);
  const double floor_bytes = units * S;
  const double floor_s = floor_bytes / copy_bw;

  Row base;
  base.case_name = c.name;
  base.shape = c.shape_str();
  base.direction = g.backward ? "fwd+bwd" : "fwd";
  base.threads = g.threads;
  base.in_cache = g.in_cache;
  base.floor_bytes = label;
  base.sets = g.sets;
  std::vector<Row> rows;
  Row fl = base;
  fl.impl = "floor";
  fl.layout = "copy: " + cs[fastest].layout;
  fl.median_ms = floor_s * 1e3;
  fl.min_ms = floor_bytes / (2.0 * S / cp.min()) * 1e3;
  fl.reps = static_cast<int>(cp.s.size());
  fl.gbps = copy_bw / 1e9;
  fl.floor_fraction = 1.0;
  rows.push_back(fl);
  double nk = 0, torch = 0, onednn = 0;
  for (const Measured& m : measured) {
    Row r = base;
    r.impl = m.impl;
    r.layout = m.layout;
    r.median_ms = m.t.median() * 1e3;
    r.min_ms = m.t.min() * 1e3;
    r.reps = static_cast<int>(m.t.s.size());
    r.gbps = floor_bytes / m.t.median() / 1e9;
    r.floor_fraction = floor_s / m.t.median();
    rows.push_back(r);
    (m.impl == "normkit" ? nk : m.impl == "torch" ? torch : onednn) = m.t.median();
  }
  for (Row& r : rows) {
    if (r.impl != "normkit") continue;
    if (torch > 0) r.vs_torch = torch / nk;
    if (onednn > 0) r.vs_onednn = onednn / nk;
  }
  return rows;
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"normkit-bench: normkit vs PyTorch (libtorch) vs oneDNN vs the memory floor"};
  app.add_option("--cases", o.cases, "comma-separated case names (default: all; see --list)");
  app.add_option("--threads", o.threads, "comma-separated thread counts")->capture_default_str();
  app.add_option("--reps", o.reps, "most timed repetitions per measurement")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "untimed repetitions first")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--budget", o.budget, "seconds per measurement after which it stops (once 5 reps are done)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--json", o.json, "also write the results to this JSON file");
  app.add_option("--llc-mb", o.llc_mb, "last-level cache size in MiB (default: detect)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--check", o.check_only, "only check every implementation against the reference; time nothing");
  app.add_flag("--list", o.list, "list the cases and exit");
  CLI11_PARSE(app, argc, argv);

  if (o.list) {
    for (const Case& c : all_cases()) std::printf("%-12s %s\n", c.name.c_str(), c.shape_str().c_str());
    return 0;
  }
  std::vector<const Case*> cases;
  for (const Case& c : all_cases()) cases.push_back(&c);
  if (!o.cases.empty()) {
    cases.clear();
    for (const std::string& name : split(o.cases)) {
      auto it = std::find_if(all_cases().begin(), all_cases().end(), [&](const Case& c) { return c.name == name; });
      if (it == all_cases().end()) {
        std::fprintf(stderr, "[normkit-bench] --cases: unknown case=%s (see --list)\n", name.c_str());
        return 2;
      }
      cases.push_back(&*it);
    }
  }
  std::vector<int> threads;
  for (const std::string& s : split(o.threads)) {
    const int t = std::atoi(s.c_str());
    if (t <= 0) {
      std::fprintf(stderr, "[normkit-bench] --threads: bad thread count=%s\n", s.c_str());
      return 2;
    }
    threads.push_back(t);
  }
  if (threads.empty()) {
    std::fprintf(stderr, "[normkit-bench] --threads: empty list\n");
    return 2;
  }

  // PyTorch allocates its outputs on every call. Keep glibc from returning those pages to
  // the kernel (and from serving big blocks by fresh mmap) so torch is not charged page
  // faults per call: this only ever favours the competitor.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);

  Excluded excluded;
  const int failures = check_all(cases, threads, excluded);
  if (failures > 0) {
    std::fprintf(stderr, "[normkit-bench] %d normkit run(s) disagree with the reference; nothing timed\n",
                 failures);
    return 1;
  }
  if (o.check_only) {
    std::printf(excluded.empty() ? "all implementations agree with the reference\n"
                                 : "normkit agrees with the reference (competitors' disagreements noted above)\n");
    return 0;
  }

  RunInfo info;
  info.machine = probe_machine(static_cast<int64_t>(o.llc_mb * 1048576.0));
  for (int i = 0; i < argc; ++i) {
    if (i) info.command += ' ';
    info.command += argv[i];
  }
  info.torch_version = torch_version();
  info.onednn_version = onednn_version();
  info.threads = threads;
  info.max_reps = o.reps;
  info.warmup = o.warmup;
  info.budget_s = o.budget;
  std::printf("\n");
  print_header(info);
  print_table_head();

  const int max_threads = *std::max_element(threads.begin(), threads.end());
  std::vector<Row> rows;
  for (const Case* c : cases) {
    const double S = c->bytes();
    // Rotate buffer sets until one pass over them (x, dy, y, dx each) overflows the L2s, so no
    // repetition starts with its data in L1/L2 from the last one; never rotate past the LLC.
    const double rotate_to = 4.0 * static_cast<double>(info.machine.l2_bytes) * max_threads;
    int sets = std::clamp(static_cast<int>(std::ceil(rotate_to / (4 * S))), 1, 16);
    while (sets > 1 && sets * 4 * S > static_cast<double>(info.machine.llc_bytes)) --sets;
    const bool in_cache = sets * 2 * S <= static_cast<double>(info.machine.llc_bytes);
    // Out of cache, every repetition must find its x in memory. One set whose x alone fits in
    // the LLC (a 32 MiB bf16 matrix, a 31 MiB detection feature map) would otherwise be read
    // from the LLC by a copy that streams y past it, and the floor would be the LLC's speed.
    // Rotate until the x's of all sets span twice the LLC.
    if (!in_cache) {
      const int span_llc_twice = static_cast<int>(std::ceil(2.0 * static_cast<double>(info.machine.llc_bytes) / S));
      sets = std::clamp(span_llc_twice, sets, 16);
    }
    auto prob = make_problem(*c, sets);
    for (bool bwd : {false, true}) {
      for (int t : threads) {
        for (const Row& r : time_group({c, bwd, t, sets, in_cache}, prob->p, o, excluded)) {
          print_row(r);
          rows.push_back(r);
        }
      }
    }
  }
  if (!o.json.empty() && !write_json(o.json, info, rows)) return 1;
  return 0;
}

}  // namespace
}  // namespace nkbench

int main(int argc, char** argv) {
  try {
    return nkbench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[normkit-bench] %s\n", e.what());
    return 1;
  }
}
