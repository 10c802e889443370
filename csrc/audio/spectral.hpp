// Short-time spectra of 1D signals: STFT, power spectrogram, mel spectrogram
// and MFCC, with their own FFT.
//
// Pure C++17, no Python. Semantics are librosa's (stated per function in
// python/medfuse/kernels/audio.py; NumPy twin python/medfuse/reference/audio.py):
// the caller pads the signal (center / pad_mode), builds the window (already
// centred in n_fft), the mel filter bank and the DCT-II matrix; the core
// frames, windows, transforms and projects.
//
// FFT (ours, see spectral_kernels.hpp): a real transform of length n is a
// complex transform of n/2 packed samples (n even) or of n samples (n odd);
// complex lengths that are powers of two use Stockham autosort passes of
// radix 4 (and one of radix 2 when log2 is odd) with precomputed per-pass
// twiddles, any other length Bluestein's chirp-z over a power-of-two
// transform. Sixteen frames are transformed at once, one per vector lane, so
// every SIMD path does the same IEEE operations per lane: results are
// bit-identical across ISA paths and thread counts (frames are independent;
// the dB maximum is an exact max). Plans are cached per (n, type).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace medfuse {

enum class SpecMode { complex_out = 0, power = 1, mel = 2, mfcc = 3 };

constexpr int kSpecLanes = 16;  // frames per FFT batch (one AVX-512 float vector)

// Tables of one FFT size in the compute type C.
template <class C>
struct FftPlan {
    std::int64_t n = 0;      // real transform length (n_fft)
    bool half = false;       // n even: complex transform of n/2 packed samples
    std::int64_t m = 0;      // complex transform length (n/2 or n)
    bool bluestein = false;  // m is not a power of two
    std::int64_t big = 0;    // power-of-two transform length (m, or >= 2m - 1)
    // Stockham radix-4 passes over lengths big, big/4, ... (>= 4): per pass
    // of length L and p in [0, L/4), w^p, w^2p, w^3p (w = exp(-2 pi i / L))
    // as six values (re, im) x 3.
    std::vector<C> tw4;
    std::vector<C> ch_re, ch_im;       // m: exp(-pi i k^2 / m)            (Bluestein)
    std::vector<C> bk_re, bk_im;       // big: FFT(conj chirp) / big       (Bluestein)
    std::vector<C> post_re, post_im;   // n/2 + 1: exp(-2 pi i k / n)      (half)
};

template <class C>
FftPlan<C> make_fft_plan(std::int64_t n);

// make_fft_plan through a small process-wide cache (thread-safe): at most 8
// plans and 64 MB per type, least recently used evicted; a plan over 16 MB is
// not cached (it lives as long as the returned pointer).
template <class C>
std::shared_ptr<const FftPlan<C>> cached_fft_plan(std::int64_t n);

// Bytes held by a plan's tables.
template <class C>
std::int64_t fft_plan_bytes(const FftPlan<C>& p);

// What the cache of type C holds now (tests, through _core._fft_plan_cache_probe).
struct FftPlanCacheStats {
    std::int64_t entries = 0, bytes = 0;
    std::vector<std::int64_t> sizes;  // the cached n_fft values
};
template <class C>
FftPlanCacheStats fft_plan_cache_stats();

// Raw views of a plan's tables (the per-ISA kernels touch no std:: containers).
template <class C>
struct FftTab {
    std::int64_t n = 0, m = 0, big = 0;
    bool half = false, bluestein = false;
    const C* tw4 = nullptr;
    const C *ch_re = nullptr, *ch_im = nullptr;
    const C *bk_re = nullptr, *bk_im = nullptr, *post_re = nullptr, *post_im = nullptr;
};

template <class T, class C>
struct SpecJob {
    const T* x = nullptr;  // (batch, len) padded signals, C-contiguous
    std::int64_t batch = 0, len = 0;
    std::int64_t n_fft = 0, hop = 1, n_frames = 0, n_freq = 0;
    const C* window = nullptr;  // n_fft
    FftTab<C> fft;
    SpecMode mode = SpecMode::complex_out;
    double power = 2.0;
    // mel projection: filter i is non-zero on bins [lo_i, hi_i) only; its
    // weights there are mel[off_i .. off_i + hi_i - lo_i) (packed bands)
    const C* mel = nullptr;
    const std::int64_t* mel_off = nullptr;
    const std::int64_t* mel_lo = nullptr;
    const std::int64_t* mel_hi = nullptr;
    std::int64_t n_mels = 0;
    // mfcc: dB of the mel spectrum, clipped at max - top_db, then DCT-II
    double amin = 1e-10, ref_db = 0.0, top_db = -1.0;  // top_db < 0: no clipping
    const C* dct = nullptr;   // (n_mfcc, n_mels), lifter folded in
    std::int64_t n_mfcc = 0;
    C* db = nullptr;          // scratch (batch, n_mels, n_frames)
    // output: complex (batch, n_freq, n_frames, 2); power (batch, n_freq,
    // n_frames); mel (batch, n_mels, n_frames); mfcc (batch, n_mfcc, n_frames)
    T* out = nullptr;
};

// Runs the job: fills job.fft from the plan, checks the signal, computes.
enum class SpecStatus {
    ok = 0,
    bad_input = 1,  // the signal holds NaN or infinity (nothing is written then)
    overflow = 2,   // an output value is not finite (a spectrum overflowed its type)
};
template <class T, class C>
SpecStatus spectral(SpecJob<T, C> job, const FftPlan<C>& plan, int threads);

// ---- per-ISA entry points (spectral_kernels.hpp compiled once per ISA) -----
// spec_block: frames [t0, t0 + 16) of signal b, scratch of spec_scratch()
// elements (64-byte aligned); writes the output (or the dB scratch for mfcc)
// and returns the largest dB value written (mfcc; -inf otherwise), or NaN if
// a value written is not finite. dct_block: the DCT of frames [t0, t0 + 16)
// of signal b with dB values clipped below at `floor` (scratch of
// 16 * n_mels elements, 64-byte aligned); false if a coefficient is not finite.
template <class C>
std::int64_t spec_scratch(const FftPlan<C>& p, std::int64_t n_freq) {
    // four FFT buffers of big rows (ar, ai, br, bi), then the power rows
    return static_cast<std::int64_t>(kSpecLanes) * (4 * p.big + n_freq);
}

#define MEDFUSE_DECLARE_ISA(ns)                                                               \
    namespace ns {                                                                            \
    double spec_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0,       \
                      float* s);                                                              \
    double spec_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0,      \
                      double* s);                                                             \
    double spec_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0,     \
                      double* s);                                                             \
    bool dct_block(const SpecJob<float, float>& j, std::int64_t b, std::int64_t t0,          \
                   double floor, float* s);                                                   \
    bool dct_block(const SpecJob<float, double>& j, std::int64_t b, std::int64_t t0,         \
                   double floor, double* s);                                                  \
    bool dct_block(const SpecJob<double, double>& j, std::int64_t b, std::int64_t t0,        \
                   double floor, double* s);                                                  \
    }
MEDFUSE_DECLARE_ISA(baseline)
MEDFUSE_DECLARE_ISA(avx2)
MEDFUSE_DECLARE_ISA(avx512)
#undef MEDFUSE_DECLARE_ISA

}  // namespace medfuse
