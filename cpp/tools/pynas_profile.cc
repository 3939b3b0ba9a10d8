// pynas-profile: measure the native networks of an op list on this device, without Python.
//
// The on-device half of pynas's profiling: pynas.profiling.oplist writes the op list on a desktop,
// this static binary runs on the phone or board (pynas.profiling.adb pushes and runs it), and its
// JSON Lines output is imported into a store there (pynas db import / pynas.store.import_jsonl).
// The networks, the harness and the kernels are the ones pynas._core times from Python, and the
// records carry the same backend_version, so both land in one store series.
//
// Exit status: 0 done (or --limit reached), 1 a failure while measuring (I/O, the harness), 2 bad
// input (arguments, the op list, an output file it cannot resume); on 2 nothing has been measured
// and the output file is as it was.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "kernels/registry.h"
#include "network/network.h"
#include "profiling/harness.h"
#include "profiling/interleaved.h"
#include "profiling/measurement_file.h"
#include "profiling/oplist.h"
#include "profiling/oplist_build.h"
#include "profiling/record.h"

namespace {

using namespace pynas;

constexpr int kInputs = 4;  // rotated by the harness: runs do not all read the same warm lines

static_assert(kMaxThreads == 256, "kUsage states the --threads range: update it with kMaxThreads");
const char* const kUsage = R"(usage: pynas-profile OPLIST -o OUT.jsonl [options]
       pynas-profile OPLIST --check

Times every entry of OPLIST (a pynas-oplist file, written by pynas.profiling.oplist) with pynas's
native kernels and appends one record per entry to OUT.jsonl (a portable measurements file: import
it with `pynas db import` or pynas.store.import_jsonl). Each record is synced to disk before the
next entry is timed. If OUT.jsonl exists, entries whose key it already holds for the same backend
version and thread count are skipped and new records are appended (resume after an interruption).

options:
  -o, --output FILE        the measurements file to write or resume (required unless --check)
  --threads N              threads per network, 1..256 (default 1)
  --budget-seconds S       timing budget per entry, warm-up excluded (default 2)
  --target-ci R            stop an entry once its median's 95% CI half-width / median <= R (default 0.01)
  --min-runs N             timed samples per entry at least (default 10)
  --max-runs N             timed samples per entry at most (default 100000)
  --warmup-runs N          untimed runs first (default 3)
  --pin CPU                pin the timing thread to core CPU
  --cpu-time               time by the timing thread's CPU time, not the wall clock: time spent
                           preempted by other processes is not counted (--threads 1 only)
  --session TAG            origin tag stored with every record (default HOSTNAME@START-TIME)
  --limit N                measure at most N entries this run
  --reference KEY          time the entries of KEY's type (segments, or whole networks) as ratios to
                           the entry KEY, timed interleaved with each (as `pynas profile` does: a
                           slow spell that slows both cancels); at most once per type
  --check                  parse the op list and build every network, measure nothing
  --version                print the version and backend version
  -h, --help               this text

exit status: 0 done, 1 failure while measuring, 2 bad input (nothing measured, OUT unchanged)
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string oplist, output, session;
  std::vector<std::string> references;  // --reference keys, in order given
  int threads = 1;
  long limit = -1;
  bool check = false;
  HarnessOptions harness;
};

long parse_long(const std::string& flag, const char* text, long min) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (!*text || *end || errno == ERANGE || v < min)
    throw UsageError(flag + ": expected an integer >= " + std::to_string(min) + ", got '" + text + "'");
  return v;
}

double parse_positive(const std::string& flag, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (!*text || *end || !(v > 0) || v > 1e9) throw UsageError(flag + ": expected a number > 0, got '" + text + "'");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw UsageError(a + ": expected a value after it");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--version") {
      std::printf("pynas-profile %s (%s)\n", PYNAS_VERSION, native_backend_version().c_str());
      std::exit(0);
    } else if (a == "-o" || a == "--output") {
      o.output = value();
    } else if (a == "--threads") {
      const long threads = parse_long(a, value(), 1);
      if (threads > kMaxThreads)
        throw UsageError("--threads: expected an integer in 1.." + std::to_string(kMaxThreads) + ", got " +
                         std::to_string(threads));
      o.threads = static_cast<int>(threads);
    } else if (a == "--budget-seconds") {
      o.harness.budget_seconds = parse_positive(a, value());
    } else if (a == "--target-ci") {
      o.harness.target_rel_ci = parse_positive(a, value());
    } else if (a == "--min-runs") {
      o.harness.min_runs = static_cast<int>(parse_long(a, value(), 3));
    } else if (a == "--max-runs") {
      o.harness.max_runs = static_cast<int>(parse_long(a, value(), 3));
    } else if (a == "--warmup-runs") {
      o.harness.warmup_runs = static_cast<int>(parse_long(a, value(), 0));
    } else if (a == "--pin") {
      o.harness.pin_cpu = static_cast<int>(parse_long(a, value(), 0));
    } else if (a == "--session") {
      o.session = value();
      if (o.session.empty()) throw UsageError("--session: expected a non-empty tag");
    } else if (a == "--limit") {
      o.limit = parse_long(a, value(), 0);
    } else if (a == "--reference") {
      o.references.push_back(value());
      if (o.references.back().empty()) throw UsageError("--reference: expected an op list entry's key");
    } else if (a == "--cpu-time") {
      o.harness.cpu_time = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a.size() > 1 && a[0] == '-') {
      throw UsageError("unknown option '" + a + "' (see --help)");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 1)
    throw UsageError("expected one OPLIST file, got " + std::to_string(positional.size()) + " (see --help)");
  o.oplist = positional[0];
  if (o.output.empty() && !o.check) throw UsageError("-o OUT.jsonl: expected an output file (or --check)");
  if (o.harness.cpu_time && o.threads != 1)
    throw UsageError("--cpu-time: expected --threads 1 (other threads' work is not the timing thread's CPU time), "
                     "got --threads " + std::to_string(o.threads));
  if (o.harness.max_runs < o.harness.min_runs)
    throw UsageError("--max-runs: expected at least --min-runs (" + std::to_string(o.harness.min_runs) + ")");
  return o;
}

std::string default_session() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) std::strcpy(host, "unknown-host");
  return std::string(host) + "@" + utc_now(false);
}

// A reference entry built once: its network, inputs, and its times in pairs so far (the fast
// state is their 10th percentile, as in pynas/profiling/steady.py; its time alone until then).
struct ReferenceNet {
  const OpListEntry* entry = nullptr;
  std::unique_ptr<Network> net;
  std::vector<std::vector<float>> inputs;
  std::vector<float> output;
  double alone_ms = 0;
  std::vector<double> times;

  double fast_ms() const {
    if (times.empty()) return alone_ms;
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const double pos = 0.1 * static_cast<double>(sorted.size() - 1);
    const size_t i = static_cast<size_t>(pos);
    return i + 1 < sorted.size() ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
  }
};

bool is_network(const OpListEntry& e) { return e.segment.empty(); }

std::string describe(const OpListEntry& e) {
  return e.segment.empty() ? "network " + e.key : e.segment + " " + e.key;
}

int run(const Options& o) {
  const OpList list = read_oplist(o.oplist);
  const std::string backend_version = native_backend_version();

  std::vector<const OpListEntry*> pending;
  std::unique_ptr<MeasurementFile> out;
  if (!o.check) {
    out = std::make_unique<MeasurementFile>(o.output, std::string("pynas-profile ") + PYNAS_VERSION);
    std::set<std::string> done;
    for (const ExistingRecord& r : out->existing())
      if (r.backend == "native" && r.backend_version == backend_version && r.threads == o.threads) done.insert(r.key);
    for (const OpListEntry& e : list.entries)
      if (!done.count(e.key)) pending.push_back(&e);
    if (!done.empty())
      std::fprintf(stderr, "pynas-profile: %s: resuming, %zu of %zu entries measured already\n", o.output.c_str(),
                   list.entries.size() - pending.size(), list.entries.size());
  } else {
    for (const OpListEntry& e : list.entries) pending.push_back(&e);
  }
  // --reference keys: entries of the op list, one per type (segment, whole network).
  const OpListEntry* reference_of[2] = {nullptr, nullptr};  // [is_network]
  for (const std::string& key : o.references) {
    const auto found = std::find_if(list.entries.begin(), list.entries.end(),
                                    [&](const OpListEntry& e) { return e.key == key; });
    if (found == list.entries.end())
      throw UsageError("--reference: expected the key of an entry of " + list.path + ", got '" + key + "'");
    if (reference_of[is_network(*found)])
      throw UsageError(std::string("--reference: expected at most one ") +
                       (is_network(*found) ? "whole-network" : "segment") + " reference, got '" +
                       reference_of[is_network(*found)]->key + "' and '" + key + "'");
    reference_of[is_network(*found)] = &*found;
  }
  const size_t left_after = o.limit >= 0 && pending.size() > static_cast<size_t>(o.limit) ? pending.size() - o.limit : 0;
  pending.resize(pending.size() - left_after);

  // Build every network once before timing any: a bad entry fails the run before it measures
  // anything (shapes are only known to fit once the network is built).
  for (const OpListEntry* e : pending) {
    Network net(1);
    build_oplist_network(list.path, *e, net);
  }
  try {
    const CpuPin pin(o.harness.pin_cpu);  // --pin names a core this process may run on
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--pin: ") + e.what());
  }
  if (o.check) {
    std::printf("%s: %zu entries, every network builds\n", list.path.c_str(), pending.size());
    return 0;
  }

  RunFacts facts;
  facts.device = device_facts();
  facts.cpu_mhz = cpu0_mhz();
  facts.session = o.session.empty() ? default_session() : o.session;
  facts.backend_version = backend_version;
  facts.pynas_version = PYNAS_VERSION;
  facts.threads = o.threads;
  if (out->torn_bytes())
    std::fprintf(stderr, "pynas-profile: %s: cutting off a %zu-byte last line an interrupted run left unfinished\n",
                 o.output.c_str(), out->torn_bytes());
  out->begin();  // everything is checked: only now is the output file changed
  ReferenceNet references[2];
  for (int kind = 0; kind < 2; ++kind) {
    if (!reference_of[kind]) continue;
    ReferenceNet& r = references[kind];
    r.entry = reference_of[kind];
    r.net = std::make_unique<Network>(o.threads);
    build_oplist_network(list.path, *r.entry, *r.net);
    r.inputs = oplist_inputs(*r.entry, *r.net, kInputs);
    r.output.resize(r.net->shape(r.net->output()).size());
  }
  for (size_t i = 0; i < pending.size(); ++i) {
    const OpListEntry& e = *pending[i];
    Network net(o.threads);
    build_oplist_network(list.path, e, net);
    const auto inputs = oplist_inputs(e, net, kInputs);
    std::vector<float> output(net.shape(net.output()).size());
    auto item = [&](size_t call) { net.run(inputs[call % inputs.size()].data(), output.data()); };
    ReferenceNet& r = references[is_network(e)];
    if (r.entry && r.entry != &e) {
      auto reference = [&](size_t call) { r.net->run(r.inputs[call % r.inputs.size()].data(), r.output.data()); };
      if (r.times.empty() && r.alone_ms == 0) r.alone_ms = time_calls(reference, o.harness).median_ms;
      const InterleavedStats stats = time_interleaved(item, reference, o.harness);
      r.times.push_back(stats.reference.median_ms);
      out->append(measurement_record(facts, e, RatioFacts{&stats, r.entry->key, r.fast_ms()}, o.harness, kInputs));
      std::fprintf(stderr, "[%zu/%zu] %s: %.4f x reference (%.4f ms; %d pairs, ci %.2f%%%s)\n", i + 1, pending.size(),
                   describe(e).c_str(), stats.ratio.median_ms, stats.ratio.median_ms * r.fast_ms(), stats.ratio.runs,
                   100 * stats.ratio.ci_rel, stats.converged ? "" : ", not converged");
      continue;
    }
    const TimingStats stats = time_calls(item, o.harness);
    out->append(measurement_record(facts, e, stats, o.harness, kInputs));
    std::fprintf(stderr, "[%zu/%zu] %s: %.4f ms (%d runs, ci %.2f%%%s)\n", i + 1, pending.size(), describe(e).c_str(),
                 stats.median_ms, stats.runs, 100 * stats.ci_rel, stats.converged ? "" : ", not converged");
  }
  std::fprintf(stderr, "pynas-profile: %s: records added: %zu\n", o.output.c_str(), pending.size());
  if (left_after)
    std::fprintf(stderr, "pynas-profile: --limit %ld reached, %zu entries left (run again to continue)\n", o.limit,
                 left_after);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pynas-profile: %s\n", e.what());
    return 2;
  } catch (const OpListError& e) {
    std::fprintf(stderr, "pynas-profile: %s\n", e.what());
    return 2;
  } catch (const MeasurementFileError& e) {
    std::fprintf(stderr, "pynas-profile: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {  // PYNAS_ISA, --pin to a core that does not exist
    std::fprintf(stderr, "pynas-profile: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pynas-profile: failed: %s\n", e.what());
    return 1;
  }
}
