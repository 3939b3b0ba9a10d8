#include "interleaved.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "../network/flush_denormals.h"

namespace pynas {
namespace {

using Clock = std::chrono::steady_clock;

// Calls per sample so that one sample takes at least min_sample_seconds (as time_calls sizes it).
int inner_for(double call_seconds, const HarnessOptions& o) {
  int inner = 1;
  if (call_seconds > 0 && call_seconds < o.min_sample_seconds)
    inner = static_cast<int>(std::ceil(o.min_sample_seconds / call_seconds));
  return std::min(inner, 1000);
}

}  // namespace

InterleavedStats summarize_pairs(const std::vector<double>& item_ms, const std::vector<double>& reference_ms,
                                 double target_rel_ci) {
  if (item_ms.empty() || item_ms.size() != reference_ms.size())
    throw std::invalid_argument("samples: expected as many reference samples as item samples, at least one");
  std::vector<double> ratios(item_ms.size());
  for (size_t i = 0; i < item_ms.size(); ++i) {
    if (!(reference_ms[i] > 0)) throw std::invalid_argument("reference_ms: expected samples > 0");
    ratios[i] = item_ms[i] / reference_ms[i];
  }
  InterleavedStats s;
  s.item = summarize(item_ms);
  s.reference = summarize(reference_ms);
  s.ratio = summarize(std::move(ratios));
  s.converged = s.ratio.ci_rel <= target_rel_ci;
  return s;
}

InterleavedStats time_interleaved(const std::function<void(size_t)>& item,
                                  const std::function<void(size_t)>& reference, const HarnessOptions& o) {
  check_harness_options(o);
  CpuPin pin(o.pin_cpu);
  const FlushDenormals flush;  // as time_calls: the mode networks run in
  const auto start = Clock::now();
  const double freq_before = cpu_frequency_mhz(current_cpu());
  size_t item_call = 0, reference_call = 0;
  // Warm-up, alternating as the pairs will (the item runs after the reference's footprint, as it
  // will be timed); each one's fastest warm-up call sizes its inner (a preempted call would not, nor
  // the first call of a freshly built network, which faults its buffers in: so two calls at least).
  double item_seconds = INFINITY, reference_seconds = INFINITY;
  for (int i = 0; i < std::max(o.warmup_runs, 2) || seconds_since(start) < o.warmup_seconds; ++i) {
    auto t0 = Clock::now();
    item(item_call++);
    item_seconds = std::min(item_seconds, seconds_since(t0));
    t0 = Clock::now();
    reference(reference_call++);
    reference_seconds = std::min(reference_seconds, seconds_since(t0));
    if (i > 1000000) break;  // callables that take no time at all
  }
  // Both samples of a pair last about as long: a spell of time slicing hits a sample by its
  // length (a 20 ms network is preempted where a 0.3 ms reference is not), so only samples of one
  // length see one state. The shorter call is repeated to the longer's length (and to
  // min_sample_seconds), within 1000 calls.
  int item_inner = o.inner ? o.inner : inner_for(item_seconds, o);
  if (!o.inner && item_seconds > 0 && item_inner * item_seconds < reference_seconds)
    item_inner = std::min(1000, static_cast<int>(std::ceil(reference_seconds / item_seconds)));
  int reference_inner = 1;
  if (reference_seconds > 0)
    reference_inner = std::clamp(static_cast<int>(std::lround(item_inner * item_seconds / reference_seconds)), 1, 1000);
  std::vector<double> item_ms, reference_ms, sorted;
  double cpu_sum[2] = {0, 0}, wall_sum[2] = {0, 0}, best_share[2] = {0, 0};
  // One sample of `calls` calls of fn (the item: 0, the reference: 1), ms per call by the chosen clock.
  auto sample = [&](const std::function<void(size_t)>& fn, size_t& call, int calls, int which) {
    const double c0 = o.cpu_time ? thread_cpu_seconds() : 0;
    const auto t0 = Clock::now();
    for (int r = 0; r < calls; ++r) fn(call++);
    const double wall = seconds_since(t0);
    if (!o.cpu_time) return 1e3 * wall / calls;
    const double cpu = thread_cpu_seconds() - c0;
    cpu_sum[which] += cpu;
    wall_sum[which] += wall;
    if (wall > 0) best_share[which] = std::max(best_share[which], cpu / wall);
    return 1e3 * cpu / calls;
  };
  const auto timed_start = Clock::now();
  for (;;) {
    item_ms.push_back(sample(item, item_call, item_inner, 0));
    reference_ms.push_back(sample(reference, reference_call, reference_inner, 1));
    const int n = static_cast<int>(item_ms.size());
    if (n >= o.max_runs) break;
    const bool over_budget = seconds_since(timed_start) >= o.budget_seconds;
    if (n >= o.min_runs && (over_budget || n % 5 == 0)) {
      sorted.resize(n);
      for (int i = 0; i < n; ++i) sorted[i] = item_ms[i] / reference_ms[i];
      if (over_budget || summarize(sorted).ci_rel <= o.target_rel_ci) break;
    }
  }
  if (o.cpu_time) {
    check_cpu_share(best_share[0]);
    check_cpu_share(best_share[1]);
  }
  InterleavedStats s = summarize_pairs(item_ms, reference_ms, o.target_rel_ci);
  if (o.cpu_time) {
    if (wall_sum[0] > 0) s.item.cpu_share = cpu_sum[0] / wall_sum[0];
    if (wall_sum[1] > 0) s.reference.cpu_share = cpu_sum[1] / wall_sum[1];
  }
  s.item.inner = item_inner;
  s.reference.inner = reference_inner;
  s.cpu = current_cpu();
  s.freq_mhz_before = freq_before;
  s.freq_mhz_after = cpu_frequency_mhz(s.cpu);
  s.seconds = seconds_since(start);
  for (TimingStats* t : {&s.item, &s.reference, &s.ratio}) {
    t->converged = s.converged;
    t->cpu = s.cpu;
    t->seconds = s.seconds;
  }
  return s;
}

}  // namespace pynas
