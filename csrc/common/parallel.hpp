// A small parallel_for over std::thread: no OpenMP runtime in the wheel.
//
// Tasks are independent (they write disjoint outputs), so which thread runs
// which task never changes a result. The first exception thrown by a task is
// rethrown on the calling thread after every worker has joined.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace medfuse {

template <class F>
void parallel_for(std::int64_t n_tasks, int n_threads, F&& fn) {
    if (n_tasks <= 0) return;
    const std::int64_t nt = std::min<std::int64_t>(std::max(n_threads, 1), n_tasks);
    if (nt <= 1) {
        for (std::int64_t i = 0; i < n_tasks; ++i) fn(i);
        return;
    }
    std::atomic<std::int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&]() {
        for (;;) {
            const std::int64_t i = next.fetch_add(1);
            if (i >= n_tasks) return;
            try {
                fn(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                next.store(n_tasks);  // stop handing out work
            }
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(nt - 1));
    try {
        for (std::int64_t t = 1; t < nt; ++t) threads.emplace_back(worker);
    } catch (...) {
        // Could not start a thread: the calling thread does the rest.
    }
    worker();
    for (auto& th : threads) th.join();
    if (error) std::rethrow_exception(error);
}

// Split [0, n) into `parts` contiguous ranges of near-equal size.
inline std::int64_t split_begin(std::int64_t n, std::int64_t parts, std::int64_t i) {
    return n * i / parts;
}

}  // namespace medfuse
