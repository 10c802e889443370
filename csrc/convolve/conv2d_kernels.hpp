// conv2d packing and micro-kernel, compiled once per ISA (included inside the
// namespace medfuse::<isa> by conv2d.cpp / conv2d_avx2.cpp; no headers here:
// the .cpp includes <cstdint>, <cstring> and <immintrin.h> first).
//
// Accumulation per output element: acc = 0; for k in 0..K-1: acc += a[k] * b[k]
// (FMA on AVX2, multiply then add on the portable path); then + bias, ReLU.

namespace {

using i64 = std::int64_t;
constexpr int MR = conv2d_detail::kMR;
constexpr int NR = conv2d_detail::kNR;

// One 16-pixel panel of the im2col tile, rows k0..k1-1: dst[(k - k0) * NR + j]
// for pixels p0 + j (j < n_valid; the rest are zero).
void pack_panel(const Conv2dJob& job, const float* ximg, i64 p0, int n_valid, i64 k0, i64 k1, float* dst) {
    // Split the panel into runs of pixels on the same output row.
    struct Seg { int j0, len; i64 ho, wo0; };
    Seg segs[NR];
    int nseg = 0;
    for (int j = 0; j < n_valid;) {
        const i64 p = p0 + j;
        const i64 ho = p / job.wo, wo0 = p % job.wo;
        const i64 len = job.wo - wo0 < n_valid - j ? job.wo - wo0 : n_valid - j;
        segs[nseg++] = Seg{j, static_cast<int>(len), ho, wo0};
        j += static_cast<int>(len);
    }
    const i64 H = job.h, W = job.wd;
    const i64 taps = job.kh * job.kw;
    i64 ci = k0 / taps, ky = (k0 % taps) / job.kw, kx = k0 % job.kw;
    for (i64 k = k0; k < k1; ++k) {
        const float* plane = ximg + ci * H * W;
        float* d = dst + (k - k0) * NR;
        for (int j = n_valid; j < NR; ++j) d[j] = 0.f;
        for (int s = 0; s < nseg; ++s) {
            const Seg& sg = segs[s];
            float* ds = d + sg.j0;
            const i64 hi = sg.ho * job.sh - job.ph + ky * job.dh;
            if (hi < 0 || hi >= H) {
                for (int t = 0; t < sg.len; ++t) ds[t] = 0.f;
                continue;
            }
            const float* row = plane + hi * W;
            const i64 wi0 = sg.wo0 * job.sw - job.pw + kx * job.dw;
            // valid t: 0 <= wi0 + t * sw < W
            i64 tlo = wi0 >= 0 ? 0 : (-wi0 + job.sw - 1) / job.sw;
            i64 thi = wi0 > W - 1 ? 0 : (W - 1 - wi0) / job.sw + 1;
            if (thi > sg.len) thi = sg.len;
            if (tlo > thi) tlo = thi;
            int t = 0;
            for (; t < tlo; ++t) ds[t] = 0.f;
            if (job.sw == 1) {
                for (; t < thi; ++t) ds[t] = row[wi0 + t];
            } else {
                for (; t < thi; ++t) ds[t] = row[wi0 + t * job.sw];
            }
            for (; t < sg.len; ++t) ds[t] = 0.f;
        }
        if (++kx == job.kw) {
            kx = 0;
            if (++ky == job.kh) {
                ky = 0;
                ++ci;
            }
        }
    }
}

// C tile (MR x NR) (+)= A panel (K x MR) * B panel (K x NR), on the valid
// mr x nr part of y (rows `ystride` apart). first: start from zero (else
// continue the sums already in y); last: add the bias and apply ReLU.
void micro_tile(const float* a, const float* b, i64 K, float* y, i64 ystride, int mr, int nr,
                const float* bias, bool relu, bool first, bool last) {
    alignas(32) float acc[MR][NR];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = (!first && i < mr && j < nr) ? y[i * ystride + j] : 0.f;
#if defined(__AVX2__)
    __m256 c00 = _mm256_load_ps(acc[0]), c01 = _mm256_load_ps(acc[0] + 8), c10 = _mm256_load_ps(acc[1]),
           c11 = _mm256_load_ps(acc[1] + 8), c20 = _mm256_load_ps(acc[2]), c21 = _mm256_load_ps(acc[2] + 8),
           c30 = _mm256_load_ps(acc[3]), c31 = _mm256_load_ps(acc[3] + 8), c40 = _mm256_load_ps(acc[4]),
           c41 = _mm256_load_ps(acc[4] + 8), c50 = _mm256_load_ps(acc[5]), c51 = _mm256_load_ps(acc[5] + 8);
    for (i64 k = 0; k < K; ++k) {
        const __m256 b0 = _mm256_load_ps(b + k * NR), b1 = _mm256_load_ps(b + k * NR + 8);
        const float* ak = a + k * MR;
        __m256 av = checked::broadcast_ss(ak + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = checked::broadcast_ss(ak + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = checked::broadcast_ss(ak + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = checked::broadcast_ss(ak + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = checked::broadcast_ss(ak + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = checked::broadcast_ss(ak + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    _mm256_store_ps(acc[0], c00); _mm256_store_ps(acc[0] + 8, c01);
    _mm256_store_ps(acc[1], c10); _mm256_store_ps(acc[1] + 8, c11);
    _mm256_store_ps(acc[2], c20); _mm256_store_ps(acc[2] + 8, c21);
    _mm256_store_ps(acc[3], c30); _mm256_store_ps(acc[3] + 8, c31);
    _mm256_store_ps(acc[4], c40); _mm256_store_ps(acc[4] + 8, c41);
    _mm256_store_ps(acc[5], c50); _mm256_store_ps(acc[5] + 8, c51);
#else
    for (i64 k = 0; k < K; ++k) {
        const float* bk = b + k * NR;
        const float* ak = a + k * MR;
        for (int i = 0; i < MR; ++i) {
            const float ai = ak[i];
            for (int j = 0; j < NR; ++j) acc[i][j] = acc[i][j] + ai * bk[j];
        }
    }
#endif
    for (int i = 0; i < mr; ++i) {
        float* yr = y + i * ystride;
        if (!last) {
            for (int j = 0; j < nr; ++j) yr[j] = acc[i][j];
            continue;
        }
        const float bi = bias ? bias[i] : 0.f;
        if (relu) {
            for (int j = 0; j < nr; ++j) {
                const float v = acc[i][j] + bi;
                yr[j] = v <= 0.f ? 0.f : v;  // NaN kept, as torch.relu
            }
        } else {
            for (int j = 0; j < nr; ++j) yr[j] = acc[i][j] + bi;
        }
    }
}

}  // namespace

void conv2d_block(const Conv2dJob& job, const float* apack, i64 img, i64 g, i64 p0, i64 p1, float* bpack) {
    const i64 cg = job.c / job.groups, cog = job.co / job.groups;
    const i64 K = cg * job.kh * job.kw;
    const i64 P = job.ho * job.wo;
    const float* ximg = job.x + (img * job.c + g * cg) * job.h * job.wd;
    const i64 npanels = (p1 - p0 + NR - 1) / NR;
    const i64 mblocks = (cog + MR - 1) / MR;
    float* ybase = job.y + (img * job.co + g * cog) * P;
    const float* bias = job.bias ? job.bias + g * cog : nullptr;
    // K in blocks of KC: every output keeps one accumulation chain over
    // k = 0..K-1 (stored in y between blocks), whatever the blocking.
    const i64 kb = conv2d_detail::block_k(K);
    for (i64 k0 = 0; k0 < K; k0 += kb) {
        const i64 k1 = K - k0 < kb ? K : k0 + kb;
        const i64 kc = k1 - k0;
        for (i64 q = 0; q < npanels; ++q) {
            const i64 pp = p0 + q * NR;
            const int nv = static_cast<int>(p1 - pp < NR ? p1 - pp : NR);
            pack_panel(job, ximg, pp, nv, k0, k1, bpack + q * kc * NR);
        }
        for (i64 mb = 0; mb < mblocks; ++mb) {
            const int mr = static_cast<int>(cog - mb * MR < MR ? cog - mb * MR : MR);
            const float* a = apack + mb * K * MR + k0 * MR;
            for (i64 q = 0; q < npanels; ++q) {
                const i64 pp = p0 + q * NR;
                const int nr = static_cast<int>(p1 - pp < NR ? p1 - pp : NR);
                micro_tile(a, bpack + q * kc * NR, kc, ybase + mb * MR * P + pp, P, mr, nr,
                           bias ? bias + mb * MR : nullptr, job.relu, k0 == 0, k1 == K);
            }
        }
    }
}
