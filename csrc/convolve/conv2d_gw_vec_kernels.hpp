// float32 grad weight without an im2col matrix (conv2d_grad_weight_vec, see
// conv2d_backward.hpp), one template over the vector width: included inside
// namespace medfuse::<isa> by conv2d_backward_avx2.cpp (8 lanes, ymm) and
// conv2d_backward_avx512.cpp (16 lanes, zmm), each after defining `GwVec`,
// the path's vector operations (i64 is std::int64_t, from
// conv2d_backward_kernels.hpp):
//   V, L (lanes), OB (output channels per register tile);
//   loadu(p), storeu(p, v), fma(a, b, c);
//   Cols (per entry e = v * kw + kx: the first input column off[e] of output
//   vector v's pixels for tap kx, and which of its L * sw input lanes lie
//   inside the row), resize(cols, entries, sw), set(cols, e, base, lo, hi,
//   sw) (lanes [lo, hi) inside);
//   load_x<SW>(cols, e, row, rin): the tap's L inputs (input lane SW * l for
//   output pixel l), zeros outside the row and on a padding row (!rin);
//   GyTail tail(WO) and load_gy(tail, v, WO, p): gy's output vector v, zeros
//   past the row.
// Each gw element is one chain in a fixed order (see gw_rows), then a lane
// sum in a fixed pairwise order: the same bits whoever runs the task.

namespace {

// acc[i][j] (L lanes each) for output channel o0 + i and tap kx0 + j of row
// ky of input channel c, continued over output rows [ho0, ho1) of image n
// (L-pixel vectors of each row in order): loaded from and stored to `buf`.
// A padding row adds 0 * gy (so a NaN in gy still reaches gw, as in the twin).
template <class S, int NX, int SW>
void gw_rows(const Conv2dGradJob<float>& job, const typename S::Cols& cols, const float* gyimg,
             const float* plane, int mr, std::int64_t ky, std::int64_t kx0, std::int64_t ho0, std::int64_t ho1,
             float* buf) {
    static_assert(SW == 1 || SW == 2, "stride 1 or 2");
    using V = typename S::V;
    constexpr int OB = S::OB, L = S::L;
    const i64 H = job.h, W = job.wd, WO = job.wo, P = job.ho * job.wo, kw = job.kw;
    const i64 nvec = (WO + L - 1) / L;
    const typename S::GyTail tail = S::tail(WO);
    V acc[OB][NX];
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) acc[i][j] = S::loadu(buf + (i * NX + j) * L);
    const float* gyr[OB];
    for (int i = 0; i < OB; ++i) gyr[i] = gyimg + (i < mr ? i : 0) * P;
    for (i64 ho = ho0; ho < ho1; ++ho) {
        const i64 hi = ho * job.sh - job.ph + ky * job.dh;
        const bool rin = hi >= 0 && hi < H;
        const float* row = plane + (rin ? hi : 0) * W;
        for (i64 v = 0; v < nvec; ++v) {
            V xv[NX];
#pragma GCC unroll 3
            for (int j = 0; j < NX; ++j)
                xv[j] = S::template load_x<SW>(cols, static_cast<std::size_t>(v * kw + kx0 + j), row, rin);
            const i64 q = ho * WO + L * v;
#pragma GCC unroll 8
            for (int i = 0; i < OB; ++i) {
                const V gv = S::load_gy(tail, v, WO, gyr[i] + q);
#pragma GCC unroll 3
                for (int j = 0; j < NX; ++j) acc[i][j] = S::fma(gv, xv[j], acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < NX; ++j) S::storeu(buf + (i * NX + j) * L, acc[i][j]);
}

template <class S, int SW>
void gw_block(const Conv2dGradJob<float>& job, const typename S::Cols& cols, const float* gyimg,
              const float* plane, int mr, std::int64_t ky, std::int64_t kx0, std::int64_t nx, std::int64_t ho0,
              std::int64_t ho1, float* buf) {
    if (nx == 3)
        gw_rows<S, 3, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
    else if (nx == 2)
        gw_rows<S, 2, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
    else
        gw_rows<S, 1, SW>(job, cols, gyimg, plane, mr, ky, kx0, ho0, ho1, buf);
}

// Fixed pairwise order: L -> L / 2 -> ... -> 1 lanes.
template <int L>
float lane_sum(const float* a) {
    float t[L];
    for (int i = 0; i < L; ++i) t[i] = a[i];
    for (int w = L / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
    return t[0];
}

template <class S>
void grad_weight_vec(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t o0, std::int64_t o1) {
    constexpr int OB = S::OB, L = S::L;
    const i64 cog = job.co / job.groups, cg = job.c / job.groups;
    const i64 kh = job.kh, kw = job.kw, taps = kh * kw, K = cg * taps;
    const i64 WO = job.wo, P = job.ho * WO, nvec = (WO + L - 1) / L;
    const int mr = static_cast<int>(o1 - o0);
    const int sw = static_cast<int>(job.sw);
    typename S::Cols cols;
    S::resize(cols, nvec * kw, sw);
    for (i64 v = 0; v < nvec; ++v) {
        const i64 npix = std::min<i64>(L, WO - L * v);
        for (i64 kx = 0; kx < kw; ++kx) {
            const i64 base = L * v * sw - job.pw + kx * job.dw;
            const i64 lo = std::max<i64>(0, -base), hi = std::min<i64>(sw * npix, job.wd - base);
            S::set(cols, static_cast<std::size_t>(v * kw + kx), base, lo, hi, sw);
        }
    }
    // One block of OB x 3 partial-sum vectors per (input channel, ky, kx chunk),
    // carried across images and bands of output rows (bands keep the gy rows
    // of the OB channels in L1 while every input channel and tap uses them).
    const i64 kxc = (kw + 2) / 3;
    std::vector<float> buf(static_cast<std::size_t>(cg * kh * kxc * OB * 3 * L), 0.f);
    const i64 band = std::max<i64>(1, 512 / std::max<i64>(WO, 1));
    for (i64 n = 0; n < job.n; ++n) {
        const float* gyimg = job.gy + (n * job.co + g * cog + o0) * P;
        for (i64 ho0 = 0; ho0 < job.ho; ho0 += band) {
            const i64 ho1 = std::min(job.ho, ho0 + band);
            for (i64 c = 0; c < cg; ++c) {
                const float* plane = job.x + (n * job.c + g * cg + c) * job.h * job.wd;
                for (i64 ky = 0; ky < kh; ++ky)
                    for (i64 q = 0; q < kxc; ++q) {
                        float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * L;
                        const i64 nx = std::min<i64>(3, kw - 3 * q);
                        if (sw == 1)
                            gw_block<S, 1>(job, cols, gyimg, plane, mr, ky, 3 * q, nx, ho0, ho1, b);
                        else
                            gw_block<S, 2>(job, cols, gyimg, plane, mr, ky, 3 * q, nx, ho0, ho1, b);
                    }
            }
        }
    }
    float* gw = job.gw + (g * cog + o0) * K;
    for (i64 c = 0; c < cg; ++c)
        for (i64 ky = 0; ky < kh; ++ky)
            for (i64 q = 0; q < kxc; ++q) {
                const float* b = buf.data() + ((c * kh + ky) * kxc + q) * OB * 3 * L;
                const i64 nx = std::min<i64>(3, kw - 3 * q);
                for (int i = 0; i < mr; ++i)
                    for (i64 j = 0; j < nx; ++j)
                        gw[i * K + c * taps + ky * kw + 3 * q + j] = lane_sum<L>(b + (i * nx + j) * L);
            }
}

}  // namespace

void conv2d_grad_weight_vec(const Conv2dGradJob<float>& job, std::int64_t g, std::int64_t o0, std::int64_t o1) {
    grad_weight_vec<GwVec>(job, g, o0, o1);
}
