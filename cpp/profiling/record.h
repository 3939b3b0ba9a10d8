// One measurement record of a portable file (pynas/store/portable.py lists the fields), as
// pynas-profile writes it: the device and run facts, the op list entry, the harness's statistics
// and settings.
#pragma once

#include <string>

#include "device.h"
#include "harness.h"
#include "interleaved.h"
#include "oplist.h"

namespace pynas {

// Facts shared by every record of one run.
struct RunFacts {
  DeviceFacts device;
  double cpu_mhz = 0;  // cpu0's clock when the run started; 0: unknown (null)
  std::string session, backend_version, pynas_version;
  int threads = 1;
};

// The record's JSON text (one line, no '\n'): a fresh random measurement_id, measured_at now.
std::string measurement_record(const RunFacts& run, const OpListEntry& entry, const TimingStats& stats,
                               const HarnessOptions& options, int inputs);

// An entry timed as a ratio to a reference (interleaved.h): what `pynas profile` stores for one
// (pynas/profiling/steady.py), so training reads both alike. stats are the ratio's times
// `reference_fast_ms` (the reference's fast state so far); the harness holds timing "ratio",
// ratio, ratio_ci_rel, raw_median_ms, reference (its key), reference_ms, reference_fast_ms, state.
struct RatioFacts {
  const InterleavedStats* stats = nullptr;
  std::string reference;
  double reference_fast_ms = 0;
};
std::string measurement_record(const RunFacts& run, const OpListEntry& entry, const RatioFacts& ratio,
                               const HarnessOptions& options, int inputs);

// A random (version 4) UUID in lowercase 8-4-4-4-12 form, from /dev/urandom.
std::string random_uuid();

// UTC now as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (with_micros) or "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now(bool with_micros);

}  // namespace pynas
