// The lane checks behind common/checked_simd.hpp (sanitizer build only; an
// empty translation unit otherwise).
#include "common/checked_simd.hpp"

#if MEDFUSE_CHECKED_SIMD
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

#include <cstdio>

namespace medfuse {
namespace checked {

namespace {

// Print which wrapper went out of bounds where (stderr and ASan's log), then
// hand the bad address to ASan, which describes it (heap-buffer-overflow, the
// allocation's stack, ...) and aborts (halt_on_error, the default).
__attribute__((noinline)) void report(const char* bad, std::size_t size, int lane, bool write, const char* what,
                                      const char* file, int line, void* pc, void* bp) {
    char msg[512];
    std::snprintf(msg, sizeof msg,
                  "medfuse checked_simd: %s %s of %zu bytes in lane %d at %p is out of bounds (%s:%d)", what,
                  write ? "write" : "read", size, lane, static_cast<const void*>(bad), file, line);
    std::fprintf(stderr, "%s\n", msg);
    std::fflush(stderr);
    __sanitizer_report_error_summary(msg);
    int sp_marker = 0;
    __asan_report_error(pc, bp, &sp_marker, const_cast<char*>(bad), write ? 1 : 0, size);
}

}  // namespace

__attribute__((noinline)) void check_contiguous(const void* p, std::uint64_t lanes, std::size_t elem, bool write,
                                                const char* what, const char* file, int line) {
    if (lanes == 0) return;
    const char* b = static_cast<const char*>(p);
    const int lo = __builtin_ctzll(lanes), hi = 63 - __builtin_clzll(lanes);
    // One query for the span of the enabled lanes; lane by lane only when it
    // is poisoned (a masked-off lane inside the span may legitimately be).
    const std::size_t span = static_cast<std::size_t>(hi - lo + 1) * elem;
    if (!__asan_region_is_poisoned(const_cast<char*>(b + lo * static_cast<std::ptrdiff_t>(elem)), span)) return;
    for (int l = lo; l <= hi; ++l) {
        if (!((lanes >> l) & 1u)) continue;
        char* q = const_cast<char*>(b + l * static_cast<std::ptrdiff_t>(elem));
        if (void* bad = __asan_region_is_poisoned(q, elem))
            report(static_cast<const char*>(bad), elem, l, write, what, file, line, __builtin_return_address(0),
                   __builtin_frame_address(0));
    }
}

__attribute__((noinline)) void check_indexed(const void* base, const std::int64_t* offsets, int n,
                                             std::uint64_t lanes, std::size_t elem, bool write, const char* what,
                                             const char* file, int line) {
    const char* b = static_cast<const char*>(base);
    for (int l = 0; l < n; ++l) {
        if (!((lanes >> l) & 1u)) continue;
        // Integer arithmetic: an index far outside the object must be reported,
        // not be undefined pointer arithmetic in the checker itself.
        const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(b) + static_cast<std::uintptr_t>(offsets[l]);
        char* q = reinterpret_cast<char*>(addr);
        if (void* bad = __asan_region_is_poisoned(q, elem))
            report(static_cast<const char*>(bad), elem, l, write, what, file, line, __builtin_return_address(0),
                   __builtin_frame_address(0));
    }
}

}  // namespace checked
}  // namespace medfuse

#endif  // MEDFUSE_CHECKED_SIMD
