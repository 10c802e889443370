// Fused scaled dot-product attention, forward and backward (flash-attention
// style: online softmax over key blocks, the Lq x Lk score matrix is never
// materialised).
//
// Pure C++17, no Python. Semantics (stated in python/medfuse/attention.py and
// mirrored by the NumPy twin python/medfuse/reference/attention.py):
//   S = scale * Q K^T (+ additive mask | bool mask -> -inf | causal -> -inf)
//   O = softmax(S) V, row-wise; a row with no finite score gets O = 0 and
//   lse = -inf (as torch 2.13; older torch returned NaN there).
//
// Layout: q, k, v are C-contiguous buffers holding several (L, d) matrices;
// batch element b (the flattened broadcast batch) reads q at q + q_off[b]
// (element offset), and likewise k, v and the mask. Broadcasting costs no
// copy: broadcast batch elements share an offset. Outputs are dense
// (batch, Lq, dv) / (batch, Lq) / ... buffers written by the kernels.
//
// Threads: forward tasks are (batch, block of 256 query rows); backward computes dk/dv per
// (batch, key block) looping over query blocks in ascending order, and dq per
// (batch, query block) looping over key blocks in ascending order (or, when
// there are enough batch elements, both in one pass per batch element with
// the same arithmetic). No atomics; results are identical for any thread
// count.
#pragma once
#include <cstdint>

namespace medfuse {

enum class MaskKind { none = 0, boolean = 1, additive = 2 };

// Block sizes: 64 query rows x 64 keys; with d = 64 float32 every packed
// block is 16 KiB.
constexpr std::int64_t kAttnBr = 64;
constexpr std::int64_t kAttnBc = 64;
// Forward query rows per task: each packed key/value block serves this many
// rows (packing is amortised), the S block stays in L2.
constexpr std::int64_t kAttnFwdBr = 256;

// Row length of packed buffers: a multiple of 64 bytes (the widest register
// tile of any ISA path), so micro-kernels never see a column tail.
template <class T>
constexpr std::int64_t attn_pad(std::int64_t n) {
    constexpr std::int64_t w = 64 / static_cast<std::int64_t>(sizeof(T));
    return (n + w - 1) / w * w;
}

template <class T>
struct AttnJob {
    const T* q = nullptr;
    const T* k = nullptr;
    const T* v = nullptr;
    const std::int64_t* q_off = nullptr;
    const std::int64_t* k_off = nullptr;
    const std::int64_t* v_off = nullptr;
    std::int64_t batch = 0, lq = 0, lk = 0, d = 0, dv = 0;
    MaskKind mask_kind = MaskKind::none;
    const std::uint8_t* mask_b = nullptr;  // bool mask (1 = attend)
    const T* mask_f = nullptr;             // additive mask
    const std::int64_t* mask_off = nullptr;
    std::int64_t mask_rs = 0, mask_cs = 0;  // row / column strides (0 = broadcast)
    bool causal = false;
    T scale = T(1);
    // forward outputs
    T* out = nullptr;  // (batch, lq, dv)
    T* lse = nullptr;  // (batch, lq), optional
    // backward inputs / outputs
    const T* o = nullptr;      // (batch, lq, dv)
    const T* dout = nullptr;   // (batch, lq, dv)
    const T* lse_in = nullptr; // (batch, lq)
    T* delta = nullptr;        // (batch, lq) scratch: rowsum(dout * o)
    T* dq = nullptr;           // (batch, lq, d)
    T* dk = nullptr;           // (batch, lk, d)
    T* dv_out = nullptr;       // (batch, lk, dv)
};

// Scratch (elements of T) for one forward task / one backward task.
template <class T>
std::int64_t attn_fwd_scratch(const AttnJob<T>& j) {
    const std::int64_t bc = attn_pad<T>(kAttnBc), dvp = attn_pad<T>(j.dv);
    return j.d * bc + kAttnBc * dvp + kAttnFwdBr * bc + kAttnFwdBr * dvp + 2 * kAttnFwdBr + 64;
}
template <class T>
std::int64_t attn_bwd_scratch(const AttnJob<T>& j) {
    const std::int64_t bc = attn_pad<T>(kAttnBc), dp = attn_pad<T>(j.d), dvp = attn_pad<T>(j.dv);
    return j.d * bc + j.dv * bc + kAttnBc * dp + kAttnBr * dp + kAttnBr * dvp + 2 * kAttnBr * bc +
           kAttnBc * dp + kAttnBc * dvp + 64;
}

// Forward: out (and lse if non-null). Backward: dq, dk, dv_out (delta is
// caller-provided scratch of batch * lq elements).
void attention_forward(const AttnJob<float>& job, int threads);
void attention_forward(const AttnJob<double>& job, int threads);
void attention_backward(const AttnJob<float>& job, int threads);
void attention_backward(const AttnJob<double>& job, int threads);

// ---- per-ISA entry points (attention_kernels.hpp compiled once per ISA) ----
// scratch: attn_*_scratch elements; dq_acc (backward, single pass): lq x
// attn_pad(d) accumulator for this batch element, or nullptr (two passes).
#define MEDFUSE_DECLARE_ISA(ns)                                                              \
    namespace ns {                                                                           \
    void attn_fwd_block(const AttnJob<float>& j, std::int64_t b, std::int64_t qb, float* s); \
    void attn_fwd_block(const AttnJob<double>& j, std::int64_t b, std::int64_t qb, double* s); \
    void attn_bwd_kv_block(const AttnJob<float>& j, std::int64_t b, std::int64_t kb, float* s, \
                           float* dq_acc);                                                   \
    void attn_bwd_kv_block(const AttnJob<double>& j, std::int64_t b, std::int64_t kb,       \
                           double* s, double* dq_acc);                                       \
    void attn_bwd_q_block(const AttnJob<float>& j, std::int64_t b, std::int64_t qb, float* s); \
    void attn_bwd_q_block(const AttnJob<double>& j, std::int64_t b, std::int64_t qb, double* s); \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
