// Single-layer unidirectional GRU recurrence, forward and backward, over a
// padded batch of variable-length sequences (torch's gate order r, z, n):
//
//   gh = W_hh h + b_hh                      (3H: r, z, n parts)
//   r  = sigmoid(gi_r + gh_r)
//   z  = sigmoid(gi_z + gh_z)
//   n  = tanh(gi_n + r * gh_n)
//   h' = (1 - z) * n + z * h
//
// The input projections gi = x W_ih^T + b_ih (B, T, 3H) are computed by the
// caller (one GEMM); so are dW_ih, db_ih, dx (GEMMs on dgi) and dW_hh, db_hh
// (one GEMM / one sum on dgh and the previous hidden states). The kernels do
// only the serial part.
//
// Pure C++17, no Python. Mirrored by the NumPy twin python/medfuse/reference/rnn.py.
//
// Layout (all C-contiguous): gi (B, T, 3H); w_hh (3H, H); b_hh (3H); h0 (B, H)
// or null (zeros); lengths (B) with 1 <= lengths[b] <= T. Outputs: out
// (B, T, H) with zeros at t >= lengths[b] (as pad_packed_sequence); h_n
// (B, H) = out[b, lengths[b] - 1]; saved (B, T, 4H) = r, z, n, gh_n per step
// (zeros past the length), what the backward needs. Backward: grad_out
// (B, T, H) (entries past a length are ignored), grad_hn (B, H) -> dgi
// (B, T, 3H) = dL/dgi, dgh (B, T, 3H) = dL/d(W_hh h + b_hh), dh0 (B, H); zeros
// past each length.
//
// Threads: one task per sequence; each recurrence is serial and writes only
// its own rows, so results are identical for any thread count. The float
// activations use medfuse's own exp (no FMA contraction, the same operations
// on every ISA path), so every SIMD path gives the same bits too.
#pragma once
#include <cstdint>

namespace medfuse {

template <class T>
struct GruJob {
    std::int64_t batch = 0, steps = 0, hidden = 0;
    const T* gi = nullptr;
    const T* w_hh = nullptr;   // (3H, H)
    const T* w_hh_t = nullptr; // (H, 3H), filled by gru_forward
    const T* b_hh = nullptr;
    const T* h0 = nullptr;     // (B, H) or null
    const std::int64_t* lengths = nullptr;
    // forward outputs / backward inputs
    T* out = nullptr;
    T* hn = nullptr;
    T* saved = nullptr;
    const T* out_in = nullptr;
    const T* saved_in = nullptr;
    // backward
    const T* grad_out = nullptr;
    const T* grad_hn = nullptr;
    T* dgi = nullptr;
    T* dgh = nullptr;
    T* dh0 = nullptr;
};

void gru_forward(GruJob<float>& job, int threads);
void gru_forward(GruJob<double>& job, int threads);
void gru_backward(const GruJob<float>& job, int threads);
void gru_backward(const GruJob<double>& job, int threads);

// ---- per-ISA entry points (gru_kernels.hpp compiled once per ISA) ----
// scratch: 4 * H elements for the sequence's task.
#define MEDFUSE_DECLARE_ISA(ns)                                                           \
    namespace ns {                                                                        \
    void gru_fwd_seq(const GruJob<float>& j, std::int64_t b, float* scratch);             \
    void gru_fwd_seq(const GruJob<double>& j, std::int64_t b, double* scratch);           \
    void gru_bwd_seq(const GruJob<float>& j, std::int64_t b, float* scratch);             \
    void gru_bwd_seq(const GruJob<double>& j, std::int64_t b, double* scratch);           \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
