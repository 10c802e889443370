// GRU recurrence loops for the avx512 path (built with its own -m flags).
#include <cmath>
#include <cstdint>

#include "rnn/gru.hpp"

namespace medfuse {
namespace avx512 {
#include "rnn/gru_kernels.hpp"
}  // namespace avx512
}  // namespace medfuse
