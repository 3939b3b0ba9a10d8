#include "harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <ctime>

#if defined(__linux__)
#include <sched.h>
#endif

#include "../network/flush_denormals.h"

namespace pynas {
namespace {

using Clock = std::chrono::steady_clock;


// Linear interpolation between order statistics (numpy's default percentile).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.size() == 1) return sorted[0];
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double frac = pos - static_cast<double>(i);
  return i + 1 < sorted.size() ? sorted[i] + frac * (sorted[i + 1] - sorted[i]) : sorted[i];
}

// Half-width of the distribution-free 95% CI of the median, relative to it: the interval between
// order statistics j and k (1-based) with j, k = n/2 -+ 1.96 sqrt(n)/2 (normal approximation of
// the binomial; conservative rounding outwards).
double median_ci_rel(const std::vector<double>& sorted, double median) {
  const double n = static_cast<double>(sorted.size());
  const double half = 1.96 * std::sqrt(n) / 2.0;
  const long j = std::max<long>(1, static_cast<long>(std::floor(n / 2.0 - half)));
  const long k = std::min<long>(static_cast<long>(n), static_cast<long>(std::ceil(n / 2.0 + half + 1.0)));
  if (median <= 0) return INFINITY;
  return (sorted[k - 1] - sorted[j - 1]) / (2.0 * median);
}

}  // namespace

void check_harness_options(const HarnessOptions& o) {
  auto bad = [](const char* field, const std::string& expected, double got) {
    std::ostringstream s;
    s << field << ": expected " << expected << ", got " << got;
    throw std::invalid_argument(s.str());
  };
  if (o.warmup_runs < 0) bad("warmup_runs", "an integer >= 0", o.warmup_runs);
  if (!(o.warmup_seconds >= 0)) bad("warmup_seconds", "a number >= 0", o.warmup_seconds);
  if (o.min_runs < 3) bad("min_runs", "an integer >= 3", o.min_runs);
  if (o.max_runs < o.min_runs) bad("max_runs", "an integer >= min_runs", o.max_runs);
  if (!(o.target_rel_ci > 0)) bad("target_rel_ci", "a number > 0", o.target_rel_ci);
  if (!(o.budget_seconds > 0)) bad("budget_seconds", "a number > 0", o.budget_seconds);
  if (o.inner < 0) bad("inner", "an integer >= 0 (0: automatic)", o.inner);
  if (!(o.min_sample_seconds >= 0)) bad("min_sample_seconds", "a number >= 0", o.min_sample_seconds);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

TimingStats summarize(std::vector<double> samples_ms) {
  if (samples_ms.empty()) throw std::invalid_argument("samples: expected at least one sample");
  TimingStats s;
  s.samples_ms = samples_ms;
  std::sort(samples_ms.begin(), samples_ms.end());
  s.runs = static_cast<int>(samples_ms.size());
  s.median_ms = percentile(samples_ms, 0.5);
  s.p10_ms = percentile(samples_ms, 0.1);
  s.p90_ms = percentile(samples_ms, 0.9);
  s.min_ms = samples_ms.front();
  double sum = 0;
  for (double x : samples_ms) sum += x;
  s.mean_ms = sum / static_cast<double>(samples_ms.size());
  std::vector<double> dev(samples_ms.size());
  for (size_t i = 0; i < samples_ms.size(); ++i) dev[i] = std::fabs(samples_ms[i] - s.median_ms);
  std::sort(dev.begin(), dev.end());
  s.mad_ms = percentile(dev, 0.5);
  s.ci_rel = median_ci_rel(samples_ms, s.median_ms);
  return s;
}

double thread_cpu_seconds() {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
    throw std::runtime_error("cpu_time: this OS does not tell a thread's CPU time (CLOCK_THREAD_CPUTIME_ID)");
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void check_cpu_share(double fastest_cpu_over_wall) {
  // Preemption alone leaves the best of many samples near 1 (a sample shorter than a time slice
  // mostly runs whole) and a long one near the thread's share of the core; work in other threads
  // leaves the calling thread's CPU time at the cost of dispatching it, a few percent.
  if (fastest_cpu_over_wall < 0.1)
    throw std::runtime_error("cpu_time: the timed calls ran mostly off the calling thread (CPU time / wall time " +
                             std::to_string(fastest_cpu_over_wall) +
                             " at best): their work runs in other threads; time them by the wall clock");
}

double cpu_frequency_mhz(int cpu) {
  if (cpu < 0) return -1;
  std::ifstream cur("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cpufreq/scaling_cur_freq");
  double khz = 0;
  if (cur >> khz && khz > 0) return khz / 1000.0;
  // x86 VMs often have no cpufreq; /proc/cpuinfo's "cpu MHz" of this processor is the next best.
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  int processor = -1;
  while (std::getline(info, line)) {
    if (line.rfind("processor", 0) == 0) processor = std::atoi(line.substr(line.find(':') + 1).c_str());
    if (processor == cpu && line.rfind("cpu MHz", 0) == 0) return std::atof(line.substr(line.find(':') + 1).c_str());
  }
  return -1;
}

CpuPin::CpuPin(int cpu) {
  if (cpu < 0) return;
#if defined(__linux__)
  cpu_set_t old;
  if (sched_getaffinity(0, sizeof(old), &old) != 0) throw std::invalid_argument("pin_cpu: cannot read this thread's affinity");
  cpu_set_t want;
  CPU_ZERO(&want);
  if (cpu >= CPU_SETSIZE) throw std::invalid_argument("pin_cpu: core " + std::to_string(cpu) + " out of range");
  CPU_SET(cpu, &want);
  if (sched_setaffinity(0, sizeof(want), &want) != 0)
    throw std::invalid_argument("pin_cpu: cannot pin to core " + std::to_string(cpu) +
                                " (no such core, or not allowed for this process)");
  saved_.resize(sizeof(old));
  std::memcpy(saved_.data(), &old, sizeof(old));
  active_ = true;
#else
  throw std::invalid_argument("pin_cpu: pinning is only supported on Linux and Android");
#endif
}

CpuPin::~CpuPin() {
#if defined(__linux__)
  if (!active_) return;
  cpu_set_t old;
  std::memcpy(&old, saved_.data(), sizeof(old));
  sched_setaffinity(0, sizeof(old), &old);
#endif
}

TimingStats time_calls(const std::function<void(size_t)>& fn, const HarnessOptions& o) {
  check_harness_options(o);
  CpuPin pin(o.pin_cpu);
  const FlushDenormals flush;  // single kernels are timed in the mode networks run in
  const auto start = Clock::now();
  const double freq_before = cpu_frequency_mhz(current_cpu());
  size_t call = 0;
  // Warm-up; its calls also size `inner`.
  double warm_call_seconds = 0;
  for (int i = 0; i < o.warmup_runs || seconds_since(start) < o.warmup_seconds; ++i) {
    const auto t0 = Clock::now();
    fn(call++);
    warm_call_seconds = seconds_since(t0);
    if (i > 1000000) break;  // a callable that takes no time at all
  }
  int inner = o.inner;
  if (inner == 0) {
    inner = 1;
    if (warm_call_seconds > 0 && warm_call_seconds < o.min_sample_seconds)
      inner = static_cast<int>(std::ceil(o.min_sample_seconds / warm_call_seconds));
    inner = std::min(inner, 1000);
  }
  std::vector<double> samples;
  const auto timed_start = Clock::now();
  double cpu_sum = 0, wall_sum = 0, best_share = 0;
  for (;;) {
    const double c0 = o.cpu_time ? thread_cpu_seconds() : 0;
    const auto t0 = Clock::now();
    for (int r = 0; r < inner; ++r) fn(call++);
    const double wall = seconds_since(t0);
    if (o.cpu_time) {
      const double cpu = thread_cpu_seconds() - c0;
      cpu_sum += cpu;
      wall_sum += wall;
      if (wall > 0) best_share = std::max(best_share, cpu / wall);
      samples.push_back(1e3 * cpu / inner);
    } else {
      samples.push_back(1e3 * wall / inner);
    }
    const int n = static_cast<int>(samples.size());
    if (n >= o.max_runs) break;
    const bool over_budget = seconds_since(timed_start) >= o.budget_seconds;
    if (n >= o.min_runs && (over_budget || n % 5 == 0)) {
      std::vector<double> sorted = samples;
      std::sort(sorted.begin(), sorted.end());
      if (median_ci_rel(sorted, percentile(sorted, 0.5)) <= o.target_rel_ci || over_budget) break;
    }
  }
  if (o.cpu_time) check_cpu_share(best_share);
  TimingStats s = summarize(std::move(samples));
  if (o.cpu_time && wall_sum > 0) s.cpu_share = cpu_sum / wall_sum;
  s.inner = inner;
  s.converged = s.ci_rel <= o.target_rel_ci;
  s.cpu = current_cpu();
  s.freq_mhz_before = freq_before;
  s.freq_mhz_after = cpu_frequency_mhz(s.cpu);
  s.seconds = seconds_since(start);
  return s;
}

}  // namespace pynas
