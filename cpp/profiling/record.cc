#include "record.h"

#include <sys/time.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include "json.h"

namespace pynas {

std::string random_uuid() {
  unsigned char b[16];
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (!urandom.read(reinterpret_cast<char*>(b), sizeof b))
    throw std::runtime_error(std::string("/dev/urandom: cannot read 16 bytes for a measurement id (") +
                             std::strerror(errno) + ")");
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::string utc_now(bool with_micros) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  const std::time_t t = tv.tv_sec;
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  if (with_micros) {
    std::snprintf(buf, sizeof buf, ".%06ld", static_cast<long>(tv.tv_usec));
    s += buf;
  }
  return s + "Z";
}

namespace {

// The record around a harness object and stats already written.
std::string record_json(const RunFacts& run, const OpListEntry& entry, const json::ObjectWriter& stats,
                        const json::ObjectWriter& harness) {
  auto known = [](json::ObjectWriter& w, const char* name, double v, bool ok) { ok ? w.number(name, v) : w.null(name); };
  json::ObjectWriter r;
  r.string("measurement_id", random_uuid()).string("measured_at", utc_now(true)).string("session", run.session);
  r.raw("device", device_json(run.device)).string("kernel", run.device.kernel);
  known(r, "cpu_mhz", run.cpu_mhz, run.cpu_mhz > 0);
  r.string("backend", "native").string("backend_version", run.backend_version).integer("threads", run.threads);
  r.string("pynas_version", run.pynas_version).string("key", entry.key).string("kind", entry.kind);
  r.raw("features", entry.features).raw("stats", stats.str()).raw("harness", harness.str());
  return r.str();
}

// The harness fields shared by plain and ratio records, from the item's own statistics.
json::ObjectWriter harness_json(const TimingStats& s, const HarnessOptions& o, int inputs) {
  // The harness says -1 (or an infinite CI, for a zero median) where it cannot tell: null here.
  auto known = [](json::ObjectWriter& w, const char* name, double v, bool ok) { ok ? w.number(name, v) : w.null(name); };
  json::ObjectWriter harness;
  harness.string("tool", "pynas-profile").integer("inputs", inputs).integer("runs", s.runs).integer("inner", s.inner);
  known(harness, "ci_rel", s.ci_rel, std::isfinite(s.ci_rel));
  harness.boolean("converged", s.converged).number("target_rel_ci", o.target_rel_ci);
  harness.number("budget_seconds", o.budget_seconds).integer("min_runs", o.min_runs).integer("max_runs", o.max_runs);
  harness.integer("warmup_runs", o.warmup_runs).number("warmup_seconds", o.warmup_seconds);
  o.pin_cpu >= 0 ? harness.integer("pin_cpu", o.pin_cpu) : harness.null("pin_cpu");
  s.cpu >= 0 ? harness.integer("cpu", s.cpu) : harness.null("cpu");
  known(harness, "freq_mhz_before", s.freq_mhz_before, s.freq_mhz_before > 0);
  known(harness, "freq_mhz_after", s.freq_mhz_after, s.freq_mhz_after > 0);
  harness.number("seconds", s.seconds).number("min_ms", s.min_ms).number("mean_ms", s.mean_ms);
  harness.boolean("cpu_time", o.cpu_time);
  if (o.cpu_time) harness.number("cpu_share", s.cpu_share);
  return harness;
}

}  // namespace

std::string measurement_record(const RunFacts& run, const OpListEntry& entry, const TimingStats& s,
                               const HarnessOptions& o, int inputs) {
  json::ObjectWriter stats;
  stats.number("median_ms", s.median_ms).number("mad_ms", s.mad_ms).number("p10_ms", s.p10_ms);
  stats.number("p90_ms", s.p90_ms).integer("runs", s.runs);
  return record_json(run, entry, stats, harness_json(s, o, inputs));
}

std::string measurement_record(const RunFacts& run, const OpListEntry& entry, const RatioFacts& ratio,
                               const HarnessOptions& o, int inputs) {
  const InterleavedStats& s = *ratio.stats;
  const double fast = ratio.reference_fast_ms;
  json::ObjectWriter stats;
  stats.number("median_ms", s.ratio.median_ms * fast).number("mad_ms", s.ratio.mad_ms * fast);
  stats.number("p10_ms", s.ratio.p10_ms * fast).number("p90_ms", s.ratio.p90_ms * fast).integer("runs", s.ratio.runs);
  json::ObjectWriter harness = harness_json(s.item, o, inputs);
  harness.string("timing", "ratio").number("ratio", s.ratio.median_ms);
  std::isfinite(s.ratio.ci_rel) ? harness.number("ratio_ci_rel", s.ratio.ci_rel) : harness.null("ratio_ci_rel");
  harness.number("raw_median_ms", s.item.median_ms).string("reference", ratio.reference);
  harness.number("reference_ms", s.reference.median_ms).number("reference_fast_ms", fast);
  harness.number("state", s.reference.median_ms / fast).integer("pairs", s.ratio.runs);
  harness.integer("reference_inner", s.reference.inner);
  return record_json(run, entry, stats, harness);
}

}  // namespace pynas
