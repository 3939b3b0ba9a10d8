// A persistent pool that splits a row range over its threads: the caller runs the first chunk,
// workers the rest, and parallel_for returns when all are done. One pool per network, so a run
// never creates threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pynas {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) over [0, n) in at most threads() contiguous chunks of at least `grain` rows.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

 private:
  void work(size_t index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t, size_t)>* task_ = nullptr;
  size_t n_ = 0, chunks_ = 0, pending_ = 0, generation_ = 0;
  bool stop_ = false;
};

}  // namespace pynas
