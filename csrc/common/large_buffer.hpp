// Large scratch buffers whose first touch faults 2 MiB pages, not 4 KiB ones.
//
// Linux gives transparent huge pages to memory that asks for them
// (madvise(MADV_HUGEPAGE); the common "madvise" setting), as NumPy asks for
// its arrays. A plain new[] of a CT volume's scratch (tens to hundreds of
// MB) faults once per 4 KiB instead: measured 60 ms of faults for the 160 MB
// of fill_holes on a 128x512x512 volume, and the faults do not scale with
// threads. The contents start uninitialised.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace medfuse {

template <class T>
class LargeBuffer {
  public:
    explicit LargeBuffer(std::size_t n) {
        constexpr std::size_t kHuge = std::size_t(2) << 20;
        std::size_t bytes = n * sizeof(T);
        if (n != 0 && bytes / n != sizeof(T)) throw std::bad_alloc();
        if (bytes == 0) bytes = sizeof(T);
        if (bytes >= 2 * kHuge) {
            const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
            p_ = static_cast<T*>(std::aligned_alloc(kHuge, rounded));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
            if (p_ != nullptr) madvise(p_, rounded, MADV_HUGEPAGE);  // a hint: failure changes nothing
#endif
        } else {
            p_ = static_cast<T*>(std::malloc(bytes));
        }
        if (p_ == nullptr) throw std::bad_alloc();
    }
    ~LargeBuffer() { std::free(p_); }
    LargeBuffer(const LargeBuffer&) = delete;
    LargeBuffer& operator=(const LargeBuffer&) = delete;
    T* get() const noexcept { return p_; }

  private:
    T* p_ = nullptr;
};

}  // namespace medfuse
