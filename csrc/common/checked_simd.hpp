// Masked and indexed SIMD memory accesses that AddressSanitizer can see.
//
// GCC's ASan instruments plain vector loads and stores (_mm512_loadu_ps is a
// dereference), but not the accesses made by builtins that take a pointer:
// masked loads/stores (_mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, ...),
// gathers/scatters and memory broadcasts. An overflow there is invisible to
// every sanitizer run. Kernels therefore never call those intrinsics
// directly: they call the wrappers below (same arguments, same order, the
// scale of a gather as a template argument), which
//   - in a normal build are the intrinsic itself (always inlined, no code
//     added: the file/line default arguments are constants that vanish);
//   - in an ASan build (__SANITIZE_ADDRESS__) first check, for every lane the
//     mask enables, that its bytes are addressable, and otherwise print which
//     wrapper at which file:line went out of bounds and raise ASan's own
//     report (heap-buffer-overflow etc., with the allocation's stack).
//
// Include this header at the top of a .cpp, before the kernels header is
// included inside namespace medfuse::<isa> (like <immintrin.h>). The AVX2 /
// AVX-512 wrappers exist only where the translation unit is compiled for
// that ISA. tests/test_checked_simd.py proves the checks fire (a test-only
// binding, compiled only in the sanitizer build, does deliberately
// out-of-range accesses in a subprocess).
#pragma once
#include <cstddef>
#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MEDFUSE_CHECKED_SIMD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEDFUSE_CHECKED_SIMD 1
#endif
#endif
#ifndef MEDFUSE_CHECKED_SIMD
#define MEDFUSE_CHECKED_SIMD 0
#endif

#define MEDFUSE_SIMD_INLINE inline __attribute__((always_inline))

namespace medfuse {
namespace checked {

#if MEDFUSE_CHECKED_SIMD
// Lanes l with bit l of `lanes` set access `elem` bytes at p + l * elem
// (contiguous forms: masked loads/stores, broadcasts).
void check_contiguous(const void* p, std::uint64_t lanes, std::size_t elem, bool write, const char* what,
                      const char* file, int line);
// Lanes l with bit l set access `elem` bytes at base + offsets[l] (offsets in
// bytes; gathers/scatters).
void check_indexed(const void* base, const std::int64_t* offsets, int n, std::uint64_t lanes, std::size_t elem,
                   bool write, const char* what, const char* file, int line);
#endif

// True in a build where the wrappers check (the sanitizer build).
constexpr bool enabled = MEDFUSE_CHECKED_SIMD != 0;

#if defined(__AVX__)
MEDFUSE_SIMD_INLINE __m256 broadcast_ss(const float* p, const char* file = __builtin_FILE(),
                                        int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, 1, 4, false, "_mm256_broadcast_ss", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm256_broadcast_ss(p);
}

MEDFUSE_SIMD_INLINE __m256d broadcast_sd(const double* p, const char* file = __builtin_FILE(),
                                         int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, 1, 8, false, "_mm256_broadcast_sd", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm256_broadcast_sd(p);
}
#endif  // __AVX__

#if defined(__AVX2__)
template <int Scale>
MEDFUSE_SIMD_INLINE __m256 i32gather_ps(const float* base, __m256i idx, const char* file = __builtin_FILE(),
                                        int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    alignas(32) std::int32_t ix[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(ix), idx);
    std::int64_t off[8];
    for (int l = 0; l < 8; ++l) off[l] = std::int64_t(ix[l]) * Scale;
    check_indexed(base, off, 8, 0xFFu, 4, false, "_mm256_i32gather_ps", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm256_i32gather_ps(base, idx, Scale);
}

template <int Scale>
MEDFUSE_SIMD_INLINE __m256d i32gather_pd(const double* base, __m128i idx, const char* file = __builtin_FILE(),
                                         int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    alignas(16) std::int32_t ix[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(ix), idx);
    std::int64_t off[4];
    for (int l = 0; l < 4; ++l) off[l] = std::int64_t(ix[l]) * Scale;
    check_indexed(base, off, 4, 0xFu, 8, false, "_mm256_i32gather_pd", file, line);
#else
    (void)file, (void)line;
#endif
    // the masked form with every lane set: GCC 12's plain form reads an undefined
    // source register, which -Werror=maybe-uninitialized rejects
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), base, idx, _mm256_castsi256_pd(_mm256_set1_epi64x(-1)),
                                    Scale);
}

// Lane l (sign bit of 32-bit element l of m set) writes p[l]; lanes off in
// the mask are never touched.
MEDFUSE_SIMD_INLINE std::uint64_t lanes_of(__m256i m) {
    return static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(m))));
}

// Lane l (sign bit of 32-bit element l of m set) reads p[l]; the other lanes
// are zero and their addresses are never touched.
MEDFUSE_SIMD_INLINE __m256 maskload_ps(const float* p, __m256i m, const char* file = __builtin_FILE(),
                                       int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, lanes_of(m), 4, false, "_mm256_maskload_ps", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm256_maskload_ps(p, m);
}

MEDFUSE_SIMD_INLINE void maskstore_ps(float* p, __m256i m, __m256 v, const char* file = __builtin_FILE(),
                                      int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, lanes_of(m), 4, true, "_mm256_maskstore_ps", file, line);
#else
    (void)file, (void)line;
#endif
    _mm256_maskstore_ps(p, m, v);
}
#endif  // __AVX2__

#if defined(__AVX512F__)
MEDFUSE_SIMD_INLINE __m512 maskz_loadu_ps(__mmask16 m, const void* p, const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, m, 4, false, "_mm512_maskz_loadu_ps", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm512_maskz_loadu_ps(m, p);
}

MEDFUSE_SIMD_INLINE void mask_storeu_ps(void* p, __mmask16 m, __m512 v, const char* file = __builtin_FILE(),
                                        int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    check_contiguous(p, m, 4, true, "_mm512_mask_storeu_ps", file, line);
#else
    (void)file, (void)line;
#endif
    _mm512_mask_storeu_ps(p, m, v);
}

template <int Scale>
MEDFUSE_SIMD_INLINE __m512 mask_i32gather_ps(__m512 src, __mmask16 m, __m512i idx, const void* base,
                                             const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    alignas(64) std::int32_t ix[16];
    _mm512_store_si512(ix, idx);
    std::int64_t off[16];
    for (int l = 0; l < 16; ++l) off[l] = std::int64_t(ix[l]) * Scale;
    check_indexed(base, off, 16, m, 4, false, "_mm512_mask_i32gather_ps", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm512_mask_i32gather_ps(src, m, idx, base, Scale);
}

template <int Scale>
MEDFUSE_SIMD_INLINE __m512d mask_i32gather_pd(__m512d src, __mmask8 m, __m256i idx, const void* base,
                                              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
#if MEDFUSE_CHECKED_SIMD
    alignas(32) std::int32_t ix[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(ix), idx);
    std::int64_t off[8];
    for (int l = 0; l < 8; ++l) off[l] = std::int64_t(ix[l]) * Scale;
    check_indexed(base, off, 8, m, 8, false, "_mm512_mask_i32gather_pd", file, line);
#else
    (void)file, (void)line;
#endif
    return _mm512_mask_i32gather_pd(src, m, idx, base, Scale);
}
#endif  // __AVX512F__

}  // namespace checked
}  // namespace medfuse

#undef MEDFUSE_SIMD_INLINE
