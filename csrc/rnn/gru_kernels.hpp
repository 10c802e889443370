// GRU recurrence inner loops, compiled once per instruction set.
//
// Included *inside* a namespace by gru.cpp (baseline), gru_avx2.cpp and
// gru_avx512.cpp, each built with its own -m flags; the loops are plain C++
// the compiler vectorises for that ISA (the matrix-vector products run over
// the 3H or H output lanes, the activations over H lanes). No FMA
// contraction (-ffp-contract=off) and the same operations in the same order
// on every path, so all paths give the same bits. It includes no headers
// (the including file provides <cstdint> and <cmath>).

namespace kern {

using i64 = std::int64_t;

// exp for float: x = k ln2 + r (k = round(x log2 e), Cody-Waite split), a
// degree-7 polynomial for e^r (Cephes' coefficients, about 1 ulp), 2^k built in
// the exponent bits. Arguments are clamped to [-87, 88] (the callers only need
// e^x to saturate); NaN stays NaN. Written without branches or selects on NaN
// (k's bits come from the rounding sum, no float-to-int conversion) so that
// every ISA path vectorises it.
inline float exp_clamped(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    const float t = xc * 1.44269504088896341f;
    const float kk = t + 12582912.0f;  // 1.5 * 2^23 + round(t): round(t) in the low mantissa bits
    const float k = kk - 12582912.0f;
    float r = xc - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float y = 1.9875691500E-4f;
    y = y * r + 1.3981999507E-3f;
    y = y * r + 8.3334519073E-3f;
    y = y * r + 4.1665795894E-2f;
    y = y * r + 1.6666665459E-1f;
    y = y * r + 5.0000001201E-1f;
    y = y * (r * r) + (r + 1.0f);
    std::uint32_t kb;
    __builtin_memcpy(&kb, &kk, sizeof kb);
    const std::uint32_t bits = (kb - 0x4B400000u + 127u) << 23;  // 2^k
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }
inline float tanh_(float x) { return 1.0f - 2.0f / (exp_clamped(2.0f * x) + 1.0f); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh_(double x) { return std::tanh(x); }

// y[c] = base[c] + ((a0[c] + a1[c]) + (a2[c] + a3[c])) for c < n, where a_p[c] sums
// x[k] * w[k * ldw + c] over k = p, p + 4, p + 8, ... < K in ascending order: four
// independent accumulation chains per output (the adds are latency-bound
// otherwise). N is the block width, n <= N the outputs computed: full blocks
// (n == N) keep the accumulators in registers, the tail block runs the same
// arithmetic with a run-time bound. Each output's operations and their order
// depend on neither N nor the ISA. base may alias y.
template <class T, int N, bool Full>
inline void dot4(const T* __restrict x, i64 K, const T* __restrict w, i64 ldw, const T* base, T* y, i64 n) {
    const i64 m = Full ? N : n;
    T a0[N], a1[N], a2[N], a3[N];
    for (i64 c = 0; c < m; ++c) a0[c] = a1[c] = a2[c] = a3[c] = T(0);
    i64 k = 0;
    for (; k + 4 <= K; k += 4) {
        const T x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
        const T* __restrict w0 = w + k * ldw;
        const T* __restrict w1 = w0 + ldw;
        const T* __restrict w2 = w1 + ldw;
        const T* __restrict w3 = w2 + ldw;
        for (i64 c = 0; c < m; ++c) {
            a0[c] += x0 * w0[c];
            a1[c] += x1 * w1[c];
            a2[c] += x2 * w2[c];
            a3[c] += x3 * w3[c];
        }
    }
    if (k < K)
        for (i64 c = 0; c < m; ++c) a0[c] += x[k] * w[k * ldw + c];
    if (k + 1 < K)
        for (i64 c = 0; c < m; ++c) a1[c] += x[k + 1] * w[(k + 1) * ldw + c];
    if (k + 2 < K)
        for (i64 c = 0; c < m; ++c) a2[c] += x[k + 2] * w[(k + 2) * ldw + c];
    for (i64 c = 0; c < m; ++c) y[c] = base[c] + ((a0[c] + a1[c]) + (a2[c] + a3[c]));
}

// y = base + W x in blocks of N outputs (see dot4); w is (K, n_out) row-major.
template <class T>
void matvec(const T* x, i64 K, const T* w, i64 n_out, const T* base, T* y) {
#if defined(__AVX512F__)
    constexpr int bytes = 128;  // two registers per accumulator: 8 of the 32
#else
    constexpr int bytes = 64;  // AVX2: 8 of the 16 registers (4 of 16 xmm pairs on the baseline)
#endif
    constexpr int N = bytes / static_cast<int>(sizeof(T));
    i64 c0 = 0;
    for (; c0 + N <= n_out; c0 += N) dot4<T, N, true>(x, K, w + c0, n_out, base + c0, y + c0, N);
    if (c0 < n_out) dot4<T, N, false>(x, K, w + c0, n_out, base + c0, y + c0, n_out - c0);
}

// One step's gates from gi (3H) and gh = W_hh h + b_hh (3H): the new hidden
// state to o (H) and r, z, n, gh_n to s (4H).
template <class T>
void gates(const T* __restrict g, const T* __restrict gh, const T* __restrict h, T* __restrict o,
           T* __restrict s, i64 H) {
    for (i64 c = 0; c < H; ++c) {
        const T r = sigmoid(g[c] + gh[c]);
        const T z = sigmoid(g[H + c] + gh[H + c]);
        const T n = tanh_(g[2 * H + c] + r * gh[2 * H + c]);
        s[c] = r;
        s[H + c] = z;
        s[2 * H + c] = n;
        s[3 * H + c] = gh[2 * H + c];
        o[c] = (T(1) - z) * n + z * h[c];
    }
}

// Forward of sequence b. scratch: gh (3H) + h (H).
template <class T>
void fwd_seq(const GruJob<T>& j, i64 b, T* __restrict scratch) {
    const i64 H = j.hidden, G = 3 * H, S = j.steps, len = j.lengths[b];
    T* __restrict gh = scratch;
    T* __restrict h = scratch + G;
    const T* __restrict wt = j.w_hh_t;
    const T* __restrict bias = j.b_hh;
    for (i64 k = 0; k < H; ++k) h[k] = j.h0 ? j.h0[b * H + k] : T(0);
    T* __restrict out = j.out + b * S * H;
    T* __restrict sv = j.saved + b * S * 4 * H;
    const T* __restrict gi = j.gi + b * S * G;
    for (i64 t = 0; t < len; ++t) {
        matvec(h, H, wt, G, bias, gh);
        gates(gi + t * G, gh, h, out + t * H, sv + t * 4 * H, H);
        for (i64 c = 0; c < H; ++c) h[c] = out[t * H + c];
    }
    for (i64 c = 0; c < (S - len) * H; ++c) out[len * H + c] = T(0);
    for (i64 c = 0; c < (S - len) * 4 * H; ++c) sv[len * 4 * H + c] = T(0);
    for (i64 c = 0; c < H; ++c) j.hn[b * H + c] = h[c];
}

// Backward of sequence b, last step first. scratch: dh (H) + carry (H).
template <class T>
void bwd_seq(const GruJob<T>& j, i64 b, T* __restrict scratch) {
    const i64 H = j.hidden, G = 3 * H, S = j.steps, len = j.lengths[b];
    T* __restrict dh = scratch;
    T* __restrict carry = scratch + H;
    const T* __restrict w = j.w_hh;
    const T* __restrict out = j.out_in + b * S * H;
    const T* __restrict sv = j.saved_in + b * S * 4 * H;
    const T* __restrict go = j.grad_out + b * S * H;
    T* __restrict dgi = j.dgi + b * S * G;
    T* __restrict dgh = j.dgh + b * S * G;
    for (i64 c = 0; c < H; ++c) carry[c] = j.grad_hn[b * H + c];
    for (i64 t = len - 1; t >= 0; --t) {
        const T* __restrict s = sv + t * 4 * H;
        const T* __restrict hp = t > 0 ? out + (t - 1) * H : (j.h0 ? j.h0 + b * H : nullptr);
        T* __restrict di = dgi + t * G;
        T* __restrict dg = dgh + t * G;
        for (i64 c = 0; c < H; ++c) dh[c] = go[t * H + c] + carry[c];
        for (i64 c = 0; c < H; ++c) {
            const T r = s[c], z = s[H + c], n = s[2 * H + c], ghn = s[3 * H + c];
            const T hprev = hp ? hp[c] : T(0);
            const T d = dh[c];
            const T dn = d * (T(1) - z);
            const T dz = d * (hprev - n);
            const T dnp = dn * (T(1) - n * n);
            const T drp = (dnp * ghn) * (r * (T(1) - r));
            const T dzp = dz * (z * (T(1) - z));
            di[c] = drp;
            di[H + c] = dzp;
            di[2 * H + c] = dnp;
            dg[c] = drp;
            dg[H + c] = dzp;
            dg[2 * H + c] = dnp * r;
            carry[c] = d * z;
        }
        matvec(dg, G, w, H, carry, carry);  // carry = d * z + W_hh^T dg
    }
    for (i64 c = 0; c < (S - len) * G; ++c) {
        dgi[len * G + c] = T(0);
        dgh[len * G + c] = T(0);
    }
    if (j.dh0)
        for (i64 c = 0; c < H; ++c) j.dh0[b * H + c] = carry[c];
}

}  // namespace kern

void gru_fwd_seq(const GruJob<float>& j, std::int64_t b, float* s) { kern::fwd_seq(j, b, s); }
void gru_fwd_seq(const GruJob<double>& j, std::int64_t b, double* s) { kern::fwd_seq(j, b, s); }
void gru_bwd_seq(const GruJob<float>& j, std::int64_t b, float* s) { kern::bwd_seq(j, b, s); }
void gru_bwd_seq(const GruJob<double>& j, std::int64_t b, double* s) { kern::bwd_seq(j, b, s); }
