// Spectral inner loops, compiled once per instruction set.
//
// Included *inside* a namespace by spectral.cpp (baseline), spectral_avx2.cpp
// and spectral_avx512.cpp, each built with its own -m flags, so every
// function here exists once per ISA and none can be merged across paths by
// the linker. It includes no headers (the including file provides <cstdint>
// and <cmath>) and instantiates no std:: templates.
//
// Every array of the FFT holds kSpecLanes frames side by side (element
// [k * 16 + lane]); the innermost loops run over the 16 lanes, which the
// compiler turns into one AVX-512 vector, two AVX2 vectors or four SSE2
// vectors of the same IEEE operations. No FMA contraction
// (-ffp-contract=off), so every path gives the same bits.

namespace kern {

using i64 = std::int64_t;
constexpr int L = kSpecLanes;

// In-place power-of-two complex FFT of 16 lanes (natural order in and out).
// inverse: conjugated twiddles, no scaling.
template <class C>
void fft_pow2(C* __restrict re, C* __restrict im, const FftTab<C>& f, bool inverse) {
    const i64 M = f.big;
    for (i64 i = 0; i < M; ++i) {
        const i64 r = f.bitrev[i];
        if (i < r) {
            C* a = re + i * L;
            C* b = re + r * L;
            C* c = im + i * L;
            C* d = im + r * L;
            for (int l = 0; l < L; ++l) {
                const C t = a[l];
                a[l] = b[l];
                b[l] = t;
                const C u = c[l];
                c[l] = d[l];
                d[l] = u;
            }
        }
    }
    // First stage (len 2): twiddle 1.
    for (i64 s = 0; s + 1 < M; s += 2) {
        C* __restrict ar = re + s * L;
        C* __restrict ai = im + s * L;
        C* __restrict br = ar + L;
        C* __restrict bi = ai + L;
        for (int l = 0; l < L; ++l) {
            const C xr = br[l], xi = bi[l];
            br[l] = ar[l] - xr;
            bi[l] = ai[l] - xi;
            ar[l] = ar[l] + xr;
            ai[l] = ai[l] + xi;
        }
    }
    for (i64 len = 4; len <= M; len <<= 1) {
        const i64 half = len >> 1, step = M / len;
        for (i64 s = 0; s < M; s += len) {
            for (i64 k = 0; k < half; ++k) {
                const C wr = f.tw_re[k * step];
                const C wi = inverse ? -f.tw_im[k * step] : f.tw_im[k * step];
                C* __restrict ar = re + (s + k) * L;
                C* __restrict ai = im + (s + k) * L;
                C* __restrict br = re + (s + k + half) * L;
                C* __restrict bi = im + (s + k + half) * L;
                for (int l = 0; l < L; ++l) {
                    const C tr = br[l] * wr - bi[l] * wi;
                    const C ti = br[l] * wi + bi[l] * wr;
                    br[l] = ar[l] - tr;
                    bi[l] = ai[l] - ti;
                    ar[l] = ar[l] + tr;
                    ai[l] = ai[l] + ti;
                }
            }
        }
    }
}

// Row q of the L interleaved transforms times the complex number t[q].
template <class C>
inline void mul_rows(C* __restrict re, C* __restrict im, const C* t_re, const C* t_im, i64 rows) {
    for (i64 q = 0; q < rows; ++q) {
        const C cr = t_re[q], ci = t_im[q];
        C* __restrict xr = re + q * L;
        C* __restrict xi = im + q * L;
        for (int l = 0; l < L; ++l) {
            const C a = xr[l], b = xi[l];
            xr[l] = a * cr - b * ci;
            xi[l] = a * ci + b * cr;
        }
    }
}

// Complex FFT of length f.m held in re/im[0, m) (buffers of f.big rows).
template <class C>
void fft_complex(C* __restrict re, C* __restrict im, const FftTab<C>& f) {
    if (!f.bluestein) {
        fft_pow2(re, im, f, false);
        return;
    }
    // Bluestein: X_k = c_k sum_j (a_j c_j) conj(c_{k-j}), c_j = exp(-pi i j^2 / m),
    // the convolution through a power-of-two transform (rows >= m are zero).
    mul_rows(re, im, f.ch_re, f.ch_im, f.m);
    fft_pow2(re, im, f, false);
    mul_rows(re, im, f.bk_re, f.bk_im, f.big);
    fft_pow2(re, im, f, true);
    mul_rows(re, im, f.ch_re, f.ch_im, f.m);
}

template <class C>
inline C power_of(C p, double power) {
    // p = |X|^2
    if (power == 2.0) return p;
    if (power == 1.0) return static_cast<C>(::sqrt(static_cast<double>(p)));
    return static_cast<C>(::pow(::sqrt(static_cast<double>(p)), power));
}

// 10 log10(max(amin, v)) - ref_db: float32 in float32 (log10f), float64 in float64.
inline float db_of(float v, double amin, double ref_db) {
    const float a = static_cast<float>(amin);
    return 10.0f * ::log10f(v > a ? v : a) - static_cast<float>(ref_db);
}
inline double db_of(double v, double amin, double ref_db) {
    return 10.0 * ::log10(v > amin ? v : amin) - ref_db;
}

template <class T, class C>
double spec_block_impl(const SpecJob<T, C>& j, i64 b, i64 t0, C* s) {
    const FftTab<C>& f = j.fft;
    const i64 big = f.big, m = f.m, nf = j.n_freq, T_ = j.n_frames;
    C* __restrict re = s;
    C* __restrict im = s + big * L;
    C* __restrict xr = s + 2 * big * L;
    C* __restrict xi = xr + nf * L;
    C* __restrict pw = xi + nf * L;
    const i64 nl = (T_ - t0) < L ? (T_ - t0) : L;
    for (i64 i = 0; i < big * L; ++i) {
        re[i] = C(0);
        im[i] = C(0);
    }
    const T* xb = j.x + b * j.len;
    const C* w = j.window;
    for (i64 l = 0; l < nl; ++l) {
        const T* fr = xb + (t0 + l) * j.hop;
        if (f.half) {
            for (i64 q = 0; q < m; ++q) {
                re[q * L + l] = static_cast<C>(fr[2 * q]) * w[2 * q];
                im[q * L + l] = static_cast<C>(fr[2 * q + 1]) * w[2 * q + 1];
            }
        } else {
            for (i64 q = 0; q < m; ++q) re[q * L + l] = static_cast<C>(fr[q]) * w[q];
        }
    }
    fft_complex(re, im, f);
    if (f.half) {
        // X_k = (Z_k + conj Z_{m-k}) / 2 + W^k (Z_k - conj Z_{m-k}) / (2i), W = exp(-2 pi i / n)
        const C h = C(0.5);
        for (i64 k = 0; k < nf; ++k) {
            const i64 ka = k == m ? 0 : k;
            const i64 kb = k == 0 ? 0 : m - k;
            const C c = f.post_re[k], sn = f.post_im[k];
            const C* __restrict ar = re + ka * L;
            const C* __restrict ai = im + ka * L;
            const C* __restrict br = re + kb * L;
            const C* __restrict bi = im + kb * L;
            C* __restrict orr = xr + k * L;
            C* __restrict oi = xi + k * L;
            for (int l = 0; l < L; ++l) {
                const C er = (ar[l] + br[l]) * h, ei = (ai[l] - bi[l]) * h;
                const C dr = ar[l] - br[l], di = ai[l] + bi[l];
                const C zr = di * h, zi = -dr * h;  // (Z_k - conj Z_{m-k}) / (2i)
                orr[l] = er + (c * zr - sn * zi);
                oi[l] = ei + (c * zi + sn * zr);
            }
        }
    } else {
        for (i64 i = 0; i < nf * L; ++i) {
            xr[i] = re[i];
            xi[i] = im[i];
        }
    }
    double best = -HUGE_VAL;
    if (j.mode == SpecMode::complex_out) {
        for (i64 k = 0; k < nf; ++k) {
            T* o = j.out + ((b * nf + k) * T_ + t0) * 2;
            for (i64 l = 0; l < nl; ++l) {
                o[2 * l] = static_cast<T>(xr[k * L + l]);
                o[2 * l + 1] = static_cast<T>(xi[k * L + l]);
            }
        }
        return best;
    }
    for (i64 i = 0; i < nf * L; ++i) pw[i] = xr[i] * xr[i] + xi[i] * xi[i];
    if (j.power != 2.0)
        for (i64 i = 0; i < nf * L; ++i) pw[i] = power_of(pw[i], j.power);
    if (j.mode == SpecMode::power) {
        for (i64 k = 0; k < nf; ++k) {
            T* o = j.out + (b * nf + k) * T_ + t0;
            for (i64 l = 0; l < nl; ++l) o[l] = static_cast<T>(pw[k * L + l]);
        }
        return best;
    }
    C acc[L];
    for (i64 mi = 0; mi < j.n_mels; ++mi) {
        for (int l = 0; l < L; ++l) acc[l] = C(0);
        const C* fb = j.mel + mi * nf;
        for (i64 k = j.mel_lo[mi]; k < j.mel_hi[mi]; ++k) {
            const C wk = fb[k];
            const C* __restrict p = pw + k * L;
            for (int l = 0; l < L; ++l) acc[l] = acc[l] + wk * p[l];
        }
        if (j.mode == SpecMode::mel) {
            T* o = j.out + (b * j.n_mels + mi) * T_ + t0;
            for (i64 l = 0; l < nl; ++l) o[l] = static_cast<T>(acc[l]);
        } else {
            C* o = j.db + (b * j.n_mels + mi) * T_ + t0;
            for (i64 l = 0; l < nl; ++l) {
                o[l] = db_of(acc[l], j.amin, j.ref_db);
                const double dc = static_cast<double>(o[l]);
                if (dc > best) best = dc;
            }
        }
    }
    return best;
}

template <class T, class C>
void dct_block_impl(const SpecJob<T, C>& j, i64 b, i64 t0, double floor) {
    const i64 T_ = j.n_frames, nm = j.n_mels;
    const i64 nl = (T_ - t0) < L ? (T_ - t0) : L;
    const C fl = static_cast<C>(floor);
    C v[L];
    C acc[L];
    // Rows of the clipped dB block are re-read per coefficient; n_mels x 16
    // values stay in L1.
    for (i64 k = 0; k < j.n_mfcc; ++k) {
        for (int l = 0; l < L; ++l) acc[l] = C(0);
        const C* d = j.dct + k * nm;
        for (i64 mi = 0; mi < nm; ++mi) {
            const C* src = j.db + (b * nm + mi) * T_ + t0;
            for (int l = 0; l < L; ++l) v[l] = C(0);
            for (i64 l = 0; l < nl; ++l) v[l] = src[l] > fl ? src[l] : fl;
            const C dk = d[mi];
            for (int l = 0; l < L; ++l) acc[l] = acc[l] + dk * v[l];
        }
        T* o = j.out + (b * j.n_mfcc + k) * T_ + t0;
        for (i64 l = 0; l < nl; ++l) o[l] = static_cast<T>(acc[l]);
    }
}

}  // namespace kern

double spec_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0, float* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
double spec_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0, double* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
double spec_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0, double* s) {
    return kern::spec_block_impl(j, b, t0, s);
}
void dct_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0, double floor) {
    kern::dct_block_impl(j, b, t0, floor);
}
void dct_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0, double floor) {
    kern::dct_block_impl(j, b, t0, floor);
}
void dct_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0, double floor) {
    kern::dct_block_impl(j, b, t0, floor);
}
