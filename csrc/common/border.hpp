// Border modes shared by every kernel family, and the one mapping from an
// out-of-range sample index to the sample it reads.
#pragma once
#include <cstdint>

namespace medfuse {

// reflect101: ... 2 1 | 0 1 ... n-1 | n-2 ...  (cv2 BORDER_REFLECT_101, scipy "mirror")
// reflect:    ... 1 0 | 0 1 ... n-1 | n-1 ...  (cv2 BORDER_REFLECT, scipy "reflect")
// replicate:  ... 0 0 | 0 1 ... n-1 | n-1 ...  (scipy "nearest")
// constant:   a fixed value outside; wrap: periodic (scipy "grid-wrap").
enum class Border { reflect101 = 0, reflect = 1, replicate = 2, constant = 3, wrap = 4 };

// Source index of sample i on an axis of length n >= 1, or -1 for the constant border.
inline std::int64_t border_index(std::int64_t i, std::int64_t n, Border b) {
    if (i >= 0 && i < n) return i;
    switch (b) {
        case Border::constant:
            return -1;
        case Border::replicate:
            return i < 0 ? 0 : n - 1;
        case Border::wrap: {
            const std::int64_t r = i % n;
            return r < 0 ? r + n : r;
        }
        case Border::reflect: {
            const std::int64_t period = 2 * n;
            std::int64_t r = i % period;
            if (r < 0) r += period;
            return r >= n ? period - 1 - r : r;
        }
        case Border::reflect101:
        default: {
            if (n == 1) return 0;
            const std::int64_t period = 2 * n - 2;
            std::int64_t r = i % period;
            if (r < 0) r += period;
            return r >= n ? period - r : r;
        }
    }
}

}  // namespace medfuse
