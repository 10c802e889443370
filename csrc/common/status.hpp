// Result of a kernel call that the bindings turn into Python exceptions.
#pragma once
#include <cstdint>

namespace medfuse {

struct Status {
    std::int64_t nonfinite = 0;  // NaN or +-inf values seen in a float input
    bool ok() const { return nonfinite == 0; }
};

}  // namespace medfuse
