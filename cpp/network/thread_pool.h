// A persistent pool that splits a row range over its threads: the caller runs the first chunk,
// workers the rest, and parallel_for returns when all are done. One pool per network, so a run
// never creates threads.
//
// Waiting spins briefly before it blocks (kSpinMicroseconds): a network run is a chain of short
// parallel steps (a 7x7 block takes 0.1-0.3 ms on two threads), and waking a blocked thread through
// the kernel costs tens of microseconds each time. Runtimes people deploy with spin the same way
// (ONNX Runtime's and XNNPACK's pools); between runs the workers block and cost nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace pynas {

// The most threads a pool (so a Network, pynas-profile's --threads, NativeNetwork and the profiling
// backends) may have. A fixed number, not a multiple of this machine's logical CPUs: a thread count
// is part of a measurement's identity (the store's series, an op list run on a phone), so the same
// count must be valid on every machine. 256 covers the largest machines pynas targets with room to
// spare (a 2-socket 64-core SMT2 server has 256 logical CPUs; phones have 8) and any useful
// oversubscription: the runner splits a layer's output rows, at most a few hundred even at large
// resolutions (112 at 224 x 224), so more threads than that get no rows. It also bounds what a typo
// costs before a single thread exists (1000 threads: 8 GB of stack address space at glibc's default).
constexpr int kMaxThreads = 256;

// How long a thread waiting for work (or for the other threads' chunks) spins before it blocks:
// longer than a run's serial stretches (an SE block's excite, a step's uneven chunks), so that a
// worker is still spinning when the next step starts. 50 us let workers block within MnasNet-A1
// runs at two threads; 500 us measured 0-10% faster there (Xeon, noisy) and a pool still sleeps
// half a millisecond after a run.
constexpr int kSpinMicroseconds = 500;

// Returns `threads` if it is in 1..kMaxThreads, else throws std::invalid_argument
// "threads: expected an integer in 1..256, got 1000" (in Python: ValueError).
int checked_thread_count(int threads);

// The OS refused to start a worker thread (std::thread failed: the process or user thread limit,
// or no address space for another stack). The pool has stopped and joined every thread it had
// started before this is thrown, so nothing is left running. In Python: pynas._core.ThreadStartError
// (a RuntimeError).
class ThreadStartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ThreadPool {
 public:
  // Starts threads - 1 workers (the caller is the first thread). Throws std::invalid_argument
  // before starting any if threads is not in 1..kMaxThreads, ThreadStartError if one cannot start.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) over [0, n) in at most threads() contiguous chunks of at least `grain` rows.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void work(size_t index);
  // Wakes every worker with stop_ set and joins it.
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  // The task of the current generation: written under mutex_ before generation_ is incremented
  // (release), read by a worker after it saw the increment (acquire). Every worker, with a chunk or
  // not, counts pending_ down once per generation, so no worker still reads these fields when the
  // next parallel_for writes them.
  const std::function<void(size_t, size_t)>* task_ = nullptr;
  size_t n_ = 0, chunks_ = 0;
  std::atomic<size_t> pending_{0}, generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace pynas
