// The timing harness: one way to time anything (a native kernel, a whole native network, or a
// Python callable wrapping another runtime), so every backend's numbers mean the same thing.
//
// Protocol: optional pinning of the calling thread to one core; warm-up (runs until both
// warmup_runs and warmup_seconds are reached: caches, page faults, the CPU clock ramping up);
// then timed samples until the median is stable, i.e. the 95% confidence interval of the median
// (distribution-free, from order statistics) is within target_rel_ci of it, after at least
// min_runs, or until budget_seconds or max_runs end the loop (then converged = false). A sample is
// `inner` consecutive calls timed together, divided by inner: for ops of a few microseconds, where
// one clock read costs a visible share. Each call gets a running index, so the callable can rotate
// input buffers (runs then do not all hit the same warm cache lines). The CPU frequency is read
// before and after where the OS exposes it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace pynas {

struct HarnessOptions {
  int warmup_runs = 3;
  double warmup_seconds = 0.02;
  int min_runs = 10;
  int max_runs = 100000;
  double target_rel_ci = 0.01;  // stop once the median's 95% CI half-width / median <= this
  double budget_seconds = 2.0;  // ... or once timed samples took this long in all
  int inner = 0;                // calls per sample; 0: enough for >= min_sample_seconds per sample
  double min_sample_seconds = 50e-6;
  int pin_cpu = -1;  // core to pin the calling thread to during timing (-1: leave as is)
  // Time samples by the calling thread's CPU time instead of the wall clock: time the thread spent
  // preempted (a neighbour's process on the core: on a shared machine the largest slow spell) is
  // not counted. Only for work that runs on the calling thread (one thread); checked: samples
  // whose CPU time is under a tenth of their wall time even at best are an error
  // (std::runtime_error: the work ran in other threads).
  bool cpu_time = false;
};

struct TimingStats {
  double median_ms = 0, mad_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0, mean_ms = 0;
  double ci_rel = 0;  // half-width of the median's 95% CI, relative to the median
  int runs = 0;       // timed samples
  int inner = 1;      // calls per sample
  bool converged = false;
  double seconds = 0;  // wall time of warm-up and samples
  int cpu = -1;        // the core the thread ran on at the end (-1: unknown)
  double freq_mhz_before = -1, freq_mhz_after = -1;  // -1: the OS does not tell
  // The thread's CPU time / wall time over the timed samples (1: it had the core to itself;
  // measured with cpu_time only, else -1).
  double cpu_share = -1;
  std::vector<double> samples_ms;  // every timed sample, in order
};

// Times fn(call_index) under `options` (checked: std::invalid_argument names a bad field).
TimingStats time_calls(const std::function<void(size_t)>& fn, const HarnessOptions& options);

// Throws std::invalid_argument naming the first bad field of `options` (time_calls checks with it).
void check_harness_options(const HarnessOptions& options);

// Throws std::runtime_error (naming cpu_time) when the best sample's CPU time / wall time is under
// 0.1: the calls' work ran in other threads, so the calling thread's CPU time does not time it.
void check_cpu_share(double fastest_cpu_over_wall);

// Statistics of samples (ms), as time_calls reports them; used by time_calls and by tests.
TimingStats summarize(std::vector<double> samples_ms);

// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID); throws std::runtime_error
// where the OS does not tell.
double thread_cpu_seconds();

// Seconds of the steady clock since t0; the core the calling thread runs on (-1: unknown). Shared by
// the harness's timing loops (time_calls, time_interleaved).
double seconds_since(std::chrono::steady_clock::time_point t0);
int current_cpu();

// Current frequency of `cpu` in MHz from cpufreq (or /proc/cpuinfo), -1 if unreadable.
double cpu_frequency_mhz(int cpu);

// Pins the calling thread to `cpu` while alive; restores the previous affinity. Throws
// std::invalid_argument if the core does not exist or the OS refuses.
class CpuPin {
 public:
  explicit CpuPin(int cpu);
  ~CpuPin();
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;

 private:
  bool active_ = false;
  std::vector<unsigned char> saved_;  // the previous cpu_set_t, opaque here
};

}  // namespace pynas
