// The persistent worker pool behind parallel_for (see parallel.hpp).
//
// One pool per process, started on first use and grown to the largest helper
// count asked for (never shrunk). A job lives on its caller's stack: the
// caller publishes it, works on it, unpublishes it, then waits until every
// helper that joined has left. Helpers join only while the job is published
// and only up to the count the caller asked for, so `threads=n` never uses
// more than n threads. Jobs from several callers may be open at once; each
// caller works on its own, so none waits for another's.
#include "common/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define MEDFUSE_HAVE_PTHREAD 1
#endif
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace medfuse {
namespace detail {
namespace {

using i64 = std::int64_t;

// How long a helper spins for a next job before blocking, and a caller for
// its helpers. A helper's spin adapts between kHelperSpinMin and
// kHelperSpinMax: it doubles whenever a job came less than kHelperSpinMax
// after the helper blocked (a longer spin would have caught it) and drops back
// to the minimum after a sleep of more than ten times that. The minimum covers
// the gap between the phases of one kernel (Canny, CLAHE call parallel_for
// several times in a row); the maximum keeps a shared core from burning long.
// (Zen 4 VM, 2 threads, a 0.5 ms grouped conv2d, 4x96x28x28 k5 s2 g4, in
// blocks of 20 calls 30 ms apart, six processes each: 0.92-1.05 ms per call
// with a fixed 50 us spin, one thread's time, against 0.56-0.85 ms adaptive;
// tests/test_pool.py checks that idle helpers stop spinning.)
constexpr auto kHelperSpinMin = std::chrono::microseconds(50);
constexpr auto kHelperSpinMax = std::chrono::microseconds(1000);
constexpr auto kCallerSpin = std::chrono::microseconds(20);
constexpr int kMaxThreads = 256;

inline void cpu_relax() noexcept {
#if defined(__SSE2__)
    _mm_pause();
#endif
}

thread_local bool t_in_region = false;

struct Job {
    i64 n_tasks = 0;
    TaskFn fn = nullptr;
    void* ctx = nullptr;
    int helpers_wanted = 0;
    int helpers_joined = 0;           // guarded by Pool::m
    std::atomic<int> helpers_active{0};  // decremented under Pool::m
    std::atomic<i64> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;

    bool open() const { return helpers_joined < helpers_wanted && next.load(std::memory_order_relaxed) < n_tasks; }

    void run() {
        for (;;) {
            const i64 i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= n_tasks) return;
            try {
                fn(ctx, i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                next.store(n_tasks, std::memory_order_relaxed);  // stop handing out work
            }
        }
    }
};

class Pool {
  public:
    void run(i64 n_tasks, int helpers, TaskFn fn, void* ctx) {
        Job job;
        job.n_tasks = n_tasks;
        job.fn = fn;
        job.ctx = ctx;
        job.helpers_wanted = helpers;
        int wake = 0;
        {
            std::lock_guard<std::mutex> lock(m_);
            grow(helpers);
            jobs_.push_back(&job);
            epoch_.fetch_add(1, std::memory_order_release);
            wake = std::min(helpers, sleeping_);
        }
        for (int w = 0; w < wake; ++w) work_cv_.notify_one();

        {
            const RegionScope scope;
            job.run();
        }

        std::unique_lock<std::mutex> lock(m_);
        for (std::size_t k = 0; k < jobs_.size(); ++k) {
            if (jobs_[k] == &job) {
                jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(k));
                break;
            }
        }
        // No helper can join now; wait for those still on a task.
        if (job.helpers_active.load(std::memory_order_acquire) != 0) {
            lock.unlock();
            const auto until = std::chrono::steady_clock::now() + kCallerSpin;
            for (int spin = 1; job.helpers_active.load(std::memory_order_acquire) != 0; ++spin) {
                cpu_relax();
                if ((spin & 63) == 0 && std::chrono::steady_clock::now() > until) break;
            }
            lock.lock();
            done_cv_.wait(lock, [&] { return job.helpers_active.load(std::memory_order_acquire) == 0; });
        }
        lock.unlock();
        if (job.error) std::rethrow_exception(job.error);
    }

  private:
    // Start threads until there are `helpers` (or as many as the OS gives).
    void grow(int helpers) {
        const int want = std::min(helpers, kMaxThreads);
        while (static_cast<int>(threads_.size()) < want) {
            try {
                threads_.emplace_back([this] { worker(); });
            } catch (...) {
                return;  // the caller and the threads there are do the work
            }
#if defined(MEDFUSE_HAVE_PTHREAD) && defined(__linux__)
            pthread_setname_np(threads_.back().native_handle(), "medfuse-pool");
#endif
        }
    }

    Job* pick() {
        for (Job* j : jobs_)
            if (j->open()) return j;
        return nullptr;
    }

    void worker() {
        using clock = std::chrono::steady_clock;
        t_in_region = true;  // a parallel_for inside a task runs serially
        auto spin_for = std::chrono::duration_cast<clock::duration>(kHelperSpinMin);
        std::unique_lock<std::mutex> lock(m_);
        for (;;) {
            Job* job = pick();
            if (job == nullptr) {
                // Spin a while for the next job before sleeping.
                const std::uint64_t seen = epoch_.load(std::memory_order_relaxed);
                lock.unlock();
                const auto until = clock::now() + spin_for;
                for (int spin = 1; epoch_.load(std::memory_order_acquire) == seen; ++spin) {
                    cpu_relax();
                    if ((spin & 63) == 0 && clock::now() > until) break;
                }
                lock.lock();
                job = pick();
                if (job == nullptr) {
                    ++sleeping_;
                    const auto slept_from = clock::now();
                    work_cv_.wait(lock, [&] { return (job = pick()) != nullptr; });
                    --sleeping_;
                    const auto slept = clock::now() - slept_from;
                    if (slept < kHelperSpinMax)  // a longer spin would have caught it
                        spin_for = std::min<clock::duration>(2 * spin_for, kHelperSpinMax);
                    else if (slept > 10 * kHelperSpinMax)
                        spin_for = kHelperSpinMin;
                }
            }
            ++job->helpers_joined;
            job->helpers_active.fetch_add(1, std::memory_order_relaxed);
            lock.unlock();
            job->run();
            lock.lock();
            if (job->helpers_active.fetch_sub(1, std::memory_order_release) == 1) done_cv_.notify_all();
        }
    }

    std::mutex m_;
    std::condition_variable work_cv_;
    std::condition_variable done_cv_;
    std::vector<Job*> jobs_;
    std::vector<std::thread> threads_;
    std::atomic<std::uint64_t> epoch_{0};
    int sleeping_ = 0;
};

// The process's pool. Never destroyed: at exit its threads sleep on a
// condition variable and die with the process. After fork() the child's copy
// of the pointer is dropped (the parent's threads do not exist there) and the
// next call starts a new pool; the old one is leaked on purpose.
std::mutex g_pool_mutex;
Pool* g_pool = nullptr;

#if defined(MEDFUSE_HAVE_PTHREAD)
void atfork_prepare() { g_pool_mutex.lock(); }
void atfork_parent() { g_pool_mutex.unlock(); }
void atfork_child() {
    g_pool = nullptr;
    g_pool_mutex.unlock();
}
#endif

Pool& pool() {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (g_pool == nullptr) {
#if defined(MEDFUSE_HAVE_PTHREAD)
        static bool registered = false;
        if (!registered) {
            registered = pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0;
        }
#endif
        g_pool = new Pool();
    }
    return *g_pool;
}

}  // namespace

bool in_parallel_region() noexcept { return t_in_region; }

RegionScope::RegionScope() noexcept : prev_(t_in_region) { t_in_region = true; }
RegionScope::~RegionScope() { t_in_region = prev_; }

void pool_run(std::int64_t n_tasks, int helpers, TaskFn fn, void* ctx) {
    pool().run(n_tasks, helpers, fn, ctx);
}

}  // namespace detail
}  // namespace medfuse
