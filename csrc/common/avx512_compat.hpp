// AVX-512 intrinsics that GCC 12 cannot take in their plain form.
//
// GCC 12 defines the plain _mm512_min/max_{ps,pd}, _mm512_cvtt{ps,pd}_epi32,
// _mm512_unpack{lo,hi}_{ps,pd} and _mm512_shuffle_f32x4 through the masked
// builtins with an undefined pass-through vector, which -Wmaybe-uninitialized
// (-Werror in CI) rejects. The masked forms with every lane set compile to the
// same instructions (NaN rules and operand order included), so results are
// bit for bit those of the plain intrinsics. Use these instead of the plain
// ones in AVX-512 code.
//
// Include from a .cpp, before the per-ISA kernel headers (they include no
// headers). Everything here has internal linkage: a TU built with other -m
// flags can never share (or be handed) these definitions through the linker.
// Empty unless the TU is compiled with AVX-512F.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

namespace medfuse {
namespace compat512 {
namespace {

inline __m512 min_ps(__m512 a, __m512 b) { return _mm512_mask_min_ps(a, static_cast<__mmask16>(0xFFFF), a, b); }
inline __m512 max_ps(__m512 a, __m512 b) { return _mm512_mask_max_ps(a, static_cast<__mmask16>(0xFFFF), a, b); }
inline __m512d min_pd(__m512d a, __m512d b) { return _mm512_mask_min_pd(a, static_cast<__mmask8>(0xFF), a, b); }
inline __m512d max_pd(__m512d a, __m512d b) { return _mm512_mask_max_pd(a, static_cast<__mmask8>(0xFF), a, b); }

inline __m512i cvttps_epi32(__m512 a) { return _mm512_maskz_cvttps_epi32(static_cast<__mmask16>(0xFFFF), a); }
inline __m256i cvttpd_epi32(__m512d a) {
    return _mm512_mask_cvttpd_epi32(_mm256_setzero_si256(), static_cast<__mmask8>(0xFF), a);
}

// Unpacks and 128-bit shuffles on float vectors (the _pd forms reinterpret
// the floats as 8 doubles, as the transposes need).
inline __m512 unpacklo_ps(__m512 a, __m512 b) { return _mm512_mask_unpacklo_ps(a, static_cast<__mmask16>(0xFFFF), a, b); }
inline __m512 unpackhi_ps(__m512 a, __m512 b) { return _mm512_mask_unpackhi_ps(a, static_cast<__mmask16>(0xFFFF), a, b); }
inline __m512 unpacklo_pd(__m512 a, __m512 b) {
    const __m512d x = _mm512_castps_pd(a);
    return _mm512_castpd_ps(_mm512_mask_unpacklo_pd(x, static_cast<__mmask8>(0xFF), x, _mm512_castps_pd(b)));
}
inline __m512 unpackhi_pd(__m512 a, __m512 b) {
    const __m512d x = _mm512_castps_pd(a);
    return _mm512_castpd_ps(_mm512_mask_unpackhi_pd(x, static_cast<__mmask8>(0xFF), x, _mm512_castps_pd(b)));
}
template <int Imm>
inline __m512 shuffle_f32x4(__m512 a, __m512 b) {
    return _mm512_mask_shuffle_f32x4(a, static_cast<__mmask16>(0xFFFF), a, b, Imm);
}

}  // namespace
}  // namespace compat512
}  // namespace medfuse
#endif  // __AVX512F__
