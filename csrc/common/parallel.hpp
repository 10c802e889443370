// parallel_for over a persistent worker pool: no OpenMP runtime in the wheel.
//
// Tasks are independent (they write disjoint outputs), so which thread runs
// which task never changes a result. The first exception thrown by a task is
// rethrown on the calling thread after every helper has left the job.
//
// The pool (parallel.cpp) starts its threads on first use and keeps them:
// a call costs a wake-up, not a thread start. The calling thread always works
// on its own job, so a call from several threads at once cannot starve; a
// parallel_for inside a task runs serially on that task's thread when the
// outer loop is threaded or has a budget of one thread (threads=1 never uses
// another thread) — but not when the outer loop has a single task (a batch of
// one), where the inner loop may use its own thread count; after fork() the
// child starts a fresh pool instead of waiting on the parent's threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace medfuse {

namespace detail {

using TaskFn = void (*)(void* ctx, std::int64_t i);

// Runs fn(ctx, i) for i in [0, n_tasks) on the calling thread and at most
// `helpers` pool threads. Requires n_tasks >= 2 and helpers >= 1.
void pool_run(std::int64_t n_tasks, int helpers, TaskFn fn, void* ctx);

// True on a pool thread, or on a caller while it runs tasks of a parallel_for.
bool in_parallel_region() noexcept;

// Marks the calling thread as running tasks for its lifetime (restored after).
class RegionScope {
  public:
    RegionScope() noexcept;
    ~RegionScope();
    RegionScope(const RegionScope&) = delete;
    RegionScope& operator=(const RegionScope&) = delete;

  private:
    bool prev_;
};

}  // namespace detail

template <class F>
void parallel_for(std::int64_t n_tasks, int n_threads, F&& fn) {
    if (n_tasks <= 0) return;
    if (n_threads <= 1 || detail::in_parallel_region()) {
        const detail::RegionScope scope;  // a parallel_for inside runs serially too
        for (std::int64_t i = 0; i < n_tasks; ++i) fn(i);
        return;
    }
    if (n_tasks == 1) {  // serial only for want of tasks: a parallel_for inside may use the threads
        fn(std::int64_t{0});
        return;
    }
    const std::int64_t nt = std::min<std::int64_t>(n_threads, n_tasks);
    using Fn = std::remove_reference_t<F>;
    detail::pool_run(
        n_tasks, static_cast<int>(nt - 1),
        [](void* ctx, std::int64_t i) { (*static_cast<Fn*>(ctx))(i); },
        const_cast<void*>(static_cast<const void*>(&fn)));
}

// Split [0, n) into `parts` contiguous ranges of near-equal size.
inline std::int64_t split_begin(std::int64_t n, std::int64_t parts, std::int64_t i) {
    return n * i / parts;
}

}  // namespace medfuse
