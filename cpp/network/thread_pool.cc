#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

#include "flush_denormals.h"

namespace pynas {

int checked_thread_count(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw std::invalid_argument("threads: expected an integer in 1.." + std::to_string(kMaxThreads) + ", got " +
                                std::to_string(threads));
  return threads;
}

ThreadPool::ThreadPool(int threads) {
  const int count = checked_thread_count(threads);
  workers_.reserve(static_cast<size_t>(count - 1));  // no reallocation (and no bad_alloc) once threads run
  for (int i = 1; i < count; ++i) {
    try {
      workers_.emplace_back([this, i] { work(static_cast<size_t>(i)); });
    } catch (const std::exception& error) {  // std::system_error (EAGAIN), or std::bad_alloc for its state
      // The workers already started wait on wake_. Leaving the constructor by the exception would
      // destroy wake_ under them (glibc's pthread_cond_destroy then waits for those waiters forever:
      // `pynas run --threads 1000` hung there where the thread limit was lower) and then joinable
      // std::threads (std::terminate). So stop and join them first.
      const size_t started = workers_.size();
      stop_workers();
      throw ThreadStartError("threads: could not start thread " + std::to_string(i + 1) + " of " +
                             std::to_string(count) + " (" + error.what() + "; the " + std::to_string(started) +
                             " started were joined): expected a count this system can start");
    }
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

static std::pair<size_t, size_t> chunk(size_t n, size_t chunks, size_t index) {
  const size_t base = n / chunks, extra = n % chunks;
  const size_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

namespace {

// How long a waiting thread spins before it blocks: longer than the gaps between the parallel steps
// of a run, short enough that a pool between runs sleeps almost at once.
constexpr auto kSpin = std::chrono::microseconds(kSpinMicroseconds);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or kSpin has passed; returns done().
template <class Done>
bool spin_until(Done done) {
  const auto end = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return done();
  }
}

}  // namespace

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  const size_t chunks = std::min<size_t>(threads(), std::max<size_t>(1, n / std::max<size_t>(grain, 1)));
  if (chunks <= 1) {
    if (n) fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &fn;
    n_ = n;
    chunks_ = chunks;
    pending_.store(workers_.size(), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();  // the workers that stopped spinning and block
  const auto [begin, end] = chunk(n, chunks, 0);
  fn(begin, end);
  auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, all_done);
  }
}

void ThreadPool::work(size_t index) {
  const FlushDenormals flush;  // for the worker's lifetime: it only runs network steps (flush_denormals.h)
  size_t seen = 0;
  auto news = [&] {
    return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
  };
  for (;;) {
    if (!spin_until(news)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, news);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    if (index < chunks_) {
      const auto [begin, end] = chunk(n_, chunks_, index);
      (*task_)(begin, end);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // the caller checks pending_ under it before it blocks
      done_.notify_one();
    }
  }
}

}  // namespace pynas
