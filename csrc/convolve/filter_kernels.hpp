// Inner loop of the filters: a multi-row FIR, vectorized along the row.
// Included inside namespace medfuse::<isa> by filter.cpp (baseline),
// filter_avx2.cpp (-mavx2 -mfma) and filter_avx512.cpp (512-bit vectors):
// system headers come from the includer. AVX2 and AVX-512 compute the same
// chain per output (a = c0 x0, then one FMA per tap; std::fma in the tails),
// so they give the same bits.
//
// The AVX2 build uses fused multiply-add (_mm256_fmadd_*), so its results
// differ from the baseline's by rounding (a few ulp of the sum); the tests
// compare floats with a tolerance scaled to sum |kernel| * |image|.

#ifndef MEDFUSE_FILTER_VEC_BYTES
#if defined(__AVX512F__)
#define MEDFUSE_FILTER_VEC_BYTES 64
#elif defined(__AVX2__)
#define MEDFUSE_FILTER_VEC_BYTES 32
#else
#define MEDFUSE_FILTER_VEC_BYTES 16
#endif
#endif

typedef float vf32 __attribute__((vector_size(MEDFUSE_FILTER_VEC_BYTES)));
typedef double vf64 __attribute__((vector_size(MEDFUSE_FILTER_VEC_BYTES)));

template <class T> struct VecOf;
template <> struct VecOf<float> { using type = vf32; };
template <> struct VecOf<double> { using type = vf64; };

template <class V, class T>
inline V vload(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <class V, class T>
inline void vstore(T* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}
template <class V, class T> inline V vsplat(T c);
#if MEDFUSE_FILTER_VEC_BYTES == 64
template <> inline vf32 vsplat<vf32, float>(float c) { return (vf32)_mm512_set1_ps(c); }
template <> inline vf64 vsplat<vf64, double>(double c) { return (vf64)_mm512_set1_pd(c); }
#elif MEDFUSE_FILTER_VEC_BYTES == 32
template <> inline vf32 vsplat<vf32, float>(float c) { return (vf32)_mm256_set1_ps(c); }
template <> inline vf64 vsplat<vf64, double>(double c) { return (vf64)_mm256_set1_pd(c); }
#else
template <> inline vf32 vsplat<vf32, float>(float c) { return (vf32)_mm_set1_ps(c); }
template <> inline vf64 vsplat<vf64, double>(double c) { return (vf64)_mm_set1_pd(c); }
#endif

inline vf32 vmadd(vf32 a, vf32 b, vf32 c) {
#if MEDFUSE_FILTER_VEC_BYTES == 64
    return (vf32)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__) && MEDFUSE_FILTER_VEC_BYTES == 32
    return (vf32)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}
inline vf64 vmadd(vf64 a, vf64 b, vf64 c) {
#if MEDFUSE_FILTER_VEC_BYTES == 64
    return (vf64)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__) && MEDFUSE_FILTER_VEC_BYTES == 32
    return (vf64)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    return a * b + c;
#endif
}
template <class T>
inline T smadd(T a, T b, T c) {
#if defined(__FMA__)
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
}

// kU independent accumulators per block: FMA latency (4-5 cycles) times two
// FMA pipes needs about 8 chains in flight.
constexpr int kU = 8;

template <class T>
void fir_impl(const T* const* src, const T* taps, int K, bool symmetric, T* out, std::int64_t n) {
    using V = typename VecOf<T>::type;
    constexpr std::int64_t L = static_cast<std::int64_t>(sizeof(V) / sizeof(T));
    std::int64_t x = 0;
    if (symmetric) {
        const int r = K / 2;
        const T* mid = src[r];
        const V cm = vsplat<V>(taps[r]);
        for (; x + kU * L <= n; x += kU * L) {
            V a[kU];
            for (int u = 0; u < kU; ++u) a[u] = cm * vload<V>(mid + x + u * L);
            for (int j = 0; j < r; ++j) {
                const V c = vsplat<V>(taps[j]);
                const T* p = src[j] + x;
                const T* q = src[K - 1 - j] + x;
                for (int u = 0; u < kU; ++u) a[u] = vmadd(c, vload<V>(p + u * L) + vload<V>(q + u * L), a[u]);
            }
            for (int u = 0; u < kU; ++u) vstore(out + x + u * L, a[u]);
        }
        for (; x + L <= n; x += L) {
            V a0 = cm * vload<V>(mid + x);
            for (int j = 0; j < r; ++j)
                a0 = vmadd(vsplat<V>(taps[j]), vload<V>(src[j] + x) + vload<V>(src[K - 1 - j] + x), a0);
            vstore(out + x, a0);
        }
        for (; x < n; ++x) {
            T a = taps[r] * mid[x];
            for (int j = 0; j < r; ++j) a = smadd(taps[j], src[j][x] + src[K - 1 - j][x], a);
            out[x] = a;
        }
        return;
    }
    const V c0 = vsplat<V>(taps[0]);
    const T* s0 = src[0];
    for (; x + kU * L <= n; x += kU * L) {
        V a[kU];
        for (int u = 0; u < kU; ++u) a[u] = c0 * vload<V>(s0 + x + u * L);
        for (int j = 1; j < K; ++j) {
            const V c = vsplat<V>(taps[j]);
            const T* p = src[j] + x;
            for (int u = 0; u < kU; ++u) a[u] = vmadd(c, vload<V>(p + u * L), a[u]);
        }
        for (int u = 0; u < kU; ++u) vstore(out + x + u * L, a[u]);
    }
    for (; x + L <= n; x += L) {
        V a0 = c0 * vload<V>(s0 + x);
        for (int j = 1; j < K; ++j) a0 = vmadd(vsplat<V>(taps[j]), vload<V>(src[j] + x), a0);
        vstore(out + x, a0);
    }
    for (; x < n; ++x) {
        T a = taps[0] * s0[x];
        for (int j = 1; j < K; ++j) a = smadd(taps[j], src[j][x], a);
        out[x] = a;
    }
}

void fir_f32(const float* const* src, const float* taps, int K, bool symmetric, float* out,
             std::int64_t n) {
    fir_impl<float>(src, taps, K, symmetric, out, n);
}
void fir_f64(const double* const* src, const double* taps, int K, bool symmetric, double* out,
             std::int64_t n) {
    fir_impl<double>(src, taps, K, symmetric, out, n);
}

// ---- unsharp-mask combine over a span ---------------------------------------------
// out[i] = |d| >= threshold ? x + amount * d : x with d = x - blurred[i], in float64
// (the same operations as the scalar formula in filter.hpp; no FMA: the build
// uses -ffp-contract=off); integer T: NaN -> 0, clipped to T's range, then rounded
// half to even (clipping to integer bounds commutes with rounding; |o| <= 65535 <
// 2^51, where (o + 1.5 * 2^52) - 1.5 * 2^52 is exactly round-half-even), float T:
// rounded to T. Explicit vectors: the select and the clip are plain lane
// operations, which GCC does not if-convert from scalar code under -ftrapping-math.
typedef std::int64_t vi64 __attribute__((vector_size(MEDFUSE_FILTER_VEC_BYTES)));

template <class T, class B>
inline T unsharp_one(T x, B blurred, double amount, double threshold) {
    const double xv = static_cast<double>(x);
    const double d = xv - static_cast<double>(blurred);
    double o = std::fabs(d) >= threshold ? xv + amount * d : xv;
    if constexpr (std::is_integral<T>::value) {
        o = std::nearbyint(o);  // half to even in the default rounding mode, as numpy.rint
        if (o != o) o = 0.0;
        const double lo = static_cast<double>(std::numeric_limits<T>::min());
        const double hi = static_cast<double>(std::numeric_limits<T>::max());
        o = o < lo ? lo : (o > hi ? hi : o);
    }
    return static_cast<T>(o);
}

template <class T, class B>
void unsharp_span_t(const T* x, const B* blurred, std::int64_t n, double amount, double threshold, T* out) {
    constexpr std::int64_t L = MEDFUSE_FILTER_VEC_BYTES / 8;
    typedef T VT __attribute__((vector_size(L * sizeof(T))));
    typedef B VB __attribute__((vector_size(L * sizeof(B))));
    const vf64 am = vsplat<vf64>(amount), th = vsplat<vf64>(threshold);
    const vi64 abs_mask = vi64{} + static_cast<std::int64_t>(0x7fffffffffffffffULL);
    std::int64_t i = 0;
    for (; i + L <= n; i += L) {
        const vf64 xv = __builtin_convertvector(vload<VT>(x + i), vf64);
        const vf64 d = xv - __builtin_convertvector(vload<VB>(blurred + i), vf64);
        const vf64 s = xv + am * d;
        const vf64 ad = __builtin_bit_cast(vf64, __builtin_bit_cast(vi64, d) & abs_mask);
        vf64 o = ad >= th ? s : xv;
        if constexpr (std::is_integral<T>::value) {
            const vf64 lo = vsplat<vf64>(static_cast<double>(std::numeric_limits<T>::min()));
            const vf64 hi = vsplat<vf64>(static_cast<double>(std::numeric_limits<T>::max()));
            const vf64 magic = vsplat<vf64>(0x1.8p52);
            o = o < lo ? lo : o;
            o = o > hi ? hi : o;
            o = o == o ? o : vf64{};  // NaN -> 0
            o = (o + magic) - magic;
        }
        vstore(out + i, __builtin_convertvector(o, VT));
    }
    for (; i < n; ++i) out[i] = unsharp_one(x[i], blurred[i], amount, threshold);
}

void unsharp_span_u8(const std::uint8_t* x, const float* b, std::int64_t n, double a, double t, std::uint8_t* o) {
    unsharp_span_t(x, b, n, a, t, o);
}
void unsharp_span_u16(const std::uint16_t* x, const float* b, std::int64_t n, double a, double t, std::uint16_t* o) {
    unsharp_span_t(x, b, n, a, t, o);
}
void unsharp_span_i16(const std::int16_t* x, const float* b, std::int64_t n, double a, double t, std::int16_t* o) {
    unsharp_span_t(x, b, n, a, t, o);
}
void unsharp_span_f32(const float* x, const float* b, std::int64_t n, double a, double t, float* o) {
    unsharp_span_t(x, b, n, a, t, o);
}
void unsharp_span_f64(const double* x, const double* b, std::int64_t n, double a, double t, double* o) {
    unsharp_span_t(x, b, n, a, t, o);
}
