// GRU recurrence loops for the avx2 path (built with its own -m flags).
#include <cmath>
#include <cstdint>

#include "rnn/gru.hpp"

namespace medfuse {
namespace avx2 {
#include "rnn/gru_kernels.hpp"
}  // namespace avx2
}  // namespace medfuse
