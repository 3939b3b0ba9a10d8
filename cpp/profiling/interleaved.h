// Interleaved ratio timing: an item timed as a ratio to a reference timed alternately with it.
//
// Why: on a shared machine the speed of the core drifts (neighbours load the caches, memory and
// the core itself; a VM's host steals time), by several percent for minutes. A time taken alone
// carries that state with it; a ratio to a reference timed in the same second does not, when the
// spell slows both alike. So samples alternate: item sample i (`inner` calls, as in time_calls),
// then reference sample i; the ratio of the pair is item_i / reference_i, and the item's latency is
// the median ratio times the reference's fast-state time (the caller's: see
// pynas/profiling/steady.py). The stopping rule of time_calls applies to the ratios: after at least
// min_runs pairs, stop once the 95% CI of the median ratio is within target_rel_ci of it, or when
// the pairs took budget_seconds, or after max_runs pairs.
//
// The reference's own times are kept too: relative to its fast state they are the machine's state
// while the item was timed (a spell's depth), which callers use to reject items timed in an extreme
// state, where the two may no longer slow alike.
#pragma once

#include <cstddef>
#include <functional>

#include "harness.h"

namespace pynas {

struct InterleavedStats {
  TimingStats item;       // the item's samples, ms per call
  TimingStats reference;  // the reference's samples, ms per call, each taken right after an item sample
  TimingStats ratio;      // item sample / reference sample, per pair (ratio.median_ms is the median ratio)
  bool converged = false;  // ratio.ci_rel <= target_rel_ci
  double seconds = 0;      // wall time of warm-up and pairs
  int cpu = -1;
  double freq_mhz_before = -1, freq_mhz_after = -1;
};

// Times item(call_index) against reference(call_index) alternately under `options`. Samples are
// matched in length: the item's `inner` (0: automatic) makes its sample at least min_sample_seconds
// and at least one reference call long, the reference's inner then makes its sample as long as the
// item's (both within 1000 calls), as the warm-up's last calls tell. min_runs / max_runs count
// pairs; target_rel_ci applies to the median ratio.
// A bad option throws std::invalid_argument naming the field.
InterleavedStats time_interleaved(const std::function<void(size_t)>& item,
                                  const std::function<void(size_t)>& reference, const HarnessOptions& options);

// Statistics of given item and reference sample series (ms, paired by index) as time_interleaved
// reports them; for tests and for callers that take samples themselves.
InterleavedStats summarize_pairs(const std::vector<double>& item_ms, const std::vector<double>& reference_ms,
                                 double target_rel_ci);

}  // namespace pynas
