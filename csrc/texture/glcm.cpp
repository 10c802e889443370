// GLCM counting and features (see glcm.hpp).
//
// Counting. The input is first turned into an "index image" of the smallest
// unsigned type holding every level: values are range-checked, and voxels
// outside the mask become a sentinel level L (the matrices get one extra row
// and column that is dropped at the end), so the counting loop has no
// branch and no mask load. Unsigned 8/16/32-bit images without a mask are
// used as they are (only checked). For each offset the rows of the valid
// region are split into chunks by problem size; every chunk counts into its
// own uint32 partial matrix (contiguous inner loop over x), and the partials
// are added per offset in chunk order. Integer sums are exact, so the result
// is the same for any thread count.
//
// Features. Each direction's non-zero cells are gathered (branch-free, into
// a buffer of the exact size) in one pass over P, then one task per
// direction normalises them and accumulates the marginals, the sum /
// difference distributions p_{x+y}, p_{x-y} and the other sums in two
// passes (means first, centred moments second), in a fixed order. Logs:
// the entropies term by term as the twin (Imc1 / Imc2 subtract nearly equal
// entropies, so their rounding must match); skimage's ln p from a table of
// ln(count) for counts.
#include "texture/glcm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/parallel.hpp"

namespace medfuse {
namespace detail {
namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

constexpr i64 kPrepChunk = i64{1} << 18;

template <class T>
inline u64 as_u64(T v) {
    if constexpr (std::is_signed<T>::value) {
        return static_cast<u64>(static_cast<i64>(v));  // negatives become huge
    } else {
        return static_cast<u64>(v);
    }
}

// Index image: dst[e] = src[e] if in the mask and in range, else sentinel.
// Returns the number of in-mask values out of range and in-mask voxels.
template <class T, class I>
void prepare_chunk(const T* src, const std::uint8_t* mask, I* dst, i64 b, i64 e, u64 levels,
                   I sentinel, i64& bad, i64& inside) {
    i64 nbad = 0, nin = 0;
    if (mask == nullptr) {
        for (i64 x = b; x < e; ++x) {
            const u64 v = as_u64(src[x]);
            const bool ok = v < levels;
            nbad += !ok;
            dst[x] = ok ? static_cast<I>(v) : sentinel;
        }
        nin = e - b;
    } else {
        for (i64 x = b; x < e; ++x) {
            const u64 v = as_u64(src[x]);
            const bool m = mask[x] != 0;
            const bool ok = v < levels;
            nbad += m & !ok;
            nin += m;
            dst[x] = (m & ok) ? static_cast<I>(v) : sentinel;
        }
    }
    bad = nbad;
    inside = nin;
}

template <class T>
void check_chunk(const T* src, i64 b, i64 e, u64 levels, i64& bad) {
    i64 nbad = 0;
    for (i64 x = b; x < e; ++x) nbad += !(as_u64(src[x]) < levels);
    bad = nbad;
}

struct Region {  // valid voxels p such that p + offset is inside the array
    i64 z0, y0, x0, nz, ny, nx;
    i64 delta;  // flat index difference of the neighbour
    i64 rows() const { return nz * ny; }
    i64 pairs() const { return nz * ny * nx; }
};

Region region_of(const GlcmJob& job, const std::int64_t* o) {
    auto span = [](i64 n, i64 d, i64& start) {
        start = std::max<i64>(0, -d);
        const i64 end = std::min<i64>(n, n - d);
        return std::max<i64>(0, end - start);
    };
    Region r{};
    r.nz = span(job.depth, o[0], r.z0);
    r.ny = span(job.height, o[1], r.y0);
    r.nx = span(job.width, o[2], r.x0);
    if (r.nz == 0 || r.ny == 0 || r.nx == 0) r.nz = r.ny = r.nx = 0;
    r.delta = (o[0] * job.height + o[1]) * job.width + o[2];
    return r;
}

// Counts pairs of rows [r0, r1) of the region into M (Lp x Lp). Column x
// goes to sub-matrix x % NS (each `cells` apart): runs of one pair (uniform
// regions) then form NS independent increment chains instead of one chain of
// store-to-load dependencies. The caller adds the sub-matrices together.
template <int NS, class I>
void count_rows(const I* idx, const GlcmJob& job, const Region& rg, i64 r0, i64 r1, i64 Lp, i64 cells,
                std::uint32_t* M) {
    const i64 W = job.width, H = job.height;
    std::uint32_t* M1 = M + (NS > 1 ? cells : 0);
    std::uint32_t* M2 = M + (NS > 2 ? 2 * cells : 0);
    std::uint32_t* M3 = M + (NS > 2 ? 3 * cells : (NS > 1 ? cells : 0));
    for (i64 r = r0; r < r1; ++r) {
        const i64 z = rg.z0 + r / rg.ny;
        const i64 y = rg.y0 + r % rg.ny;
        const I* a = idx + (z * H + y) * W + rg.x0;
        const I* b = a + rg.delta;
        const i64 n = rg.nx;
        i64 x = 0;
        for (; x + 4 <= n; x += 4) {
            const i64 i0 = static_cast<i64>(a[x]) * Lp + static_cast<i64>(b[x]);
            const i64 i1 = static_cast<i64>(a[x + 1]) * Lp + static_cast<i64>(b[x + 1]);
            const i64 i2 = static_cast<i64>(a[x + 2]) * Lp + static_cast<i64>(b[x + 2]);
            const i64 i3 = static_cast<i64>(a[x + 3]) * Lp + static_cast<i64>(b[x + 3]);
            ++M[i0];
            ++M1[i1];
            ++M2[i2];
            ++M3[i3];
        }
        for (; x < n; ++x) ++M[static_cast<i64>(a[x]) * Lp + static_cast<i64>(b[x])];
    }
}

// Sub-matrices per task: only as many as fit in a 32 KiB L1 together (measured:
// 4 L2-resident copies were 2x slower than 1 L1-resident copy at 82 levels).
inline int n_sub(i64 cells) {
    const i64 bytes = cells * static_cast<i64>(sizeof(std::uint32_t));
    if (bytes * 4 <= (i64{32} << 10)) return 4;
    if (bytes * 2 <= (i64{32} << 10)) return 2;
    return 1;
}

struct Task {
    i64 k, r0, r1;
    std::uint32_t* M;
};

template <class I>
void count_all(const I* idx, const GlcmJob& job, i64 Lp, int threads) {
    const i64 L = job.levels, n = job.n_offsets;
    const i64 cells = Lp * Lp;
    std::vector<Region> regions;
    regions.reserve(static_cast<std::size_t>(n));
    for (i64 k = 0; k < n; ++k) regions.push_back(region_of(job, job.offsets + 3 * k));

    // Chunks per offset: by problem size only (never by thread count).
    const i64 min_pairs = std::max<i64>(i64{1} << 20, 8 * cells);
    std::vector<i64> chunks(static_cast<std::size_t>(n));
    i64 total_chunks = 0;
    for (i64 k = 0; k < n; ++k) {
        const Region& rg = regions[static_cast<std::size_t>(k)];
        i64 c = rg.pairs() == 0 ? 1 : (rg.pairs() + min_pairs - 1) / min_pairs;
        c = std::max<i64>(1, std::min<i64>({c, rg.rows(), 64}));
        chunks[static_cast<std::size_t>(k)] = c;
        total_chunks += c;
    }
    // Memory for the partials: one matrix per chunk.
    std::unique_ptr<std::uint32_t[]> buf(new std::uint32_t[static_cast<std::size_t>(total_chunks * cells)]);
    std::vector<Task> tasks;
    std::vector<std::uint32_t*> first(static_cast<std::size_t>(n));
    i64 used = 0;
    for (i64 k = 0; k < n; ++k) {
        const Region& rg = regions[static_cast<std::size_t>(k)];
        const i64 c = chunks[static_cast<std::size_t>(k)];
        first[static_cast<std::size_t>(k)] = buf.get() + used * cells;
        for (i64 t = 0; t < c; ++t) {
            tasks.push_back({k, split_begin(rg.rows(), c, t), split_begin(rg.rows(), c, t + 1),
                             buf.get() + (used + t) * cells});
        }
        used += c;
    }
    const int ns = n_sub(cells);
    parallel_for(static_cast<i64>(tasks.size()), threads, [&](i64 t) {
        const Task& task = tasks[static_cast<std::size_t>(t)];
        const Region& rg = regions[static_cast<std::size_t>(task.k)];
        if (ns == 1) {
            std::memset(task.M, 0, static_cast<std::size_t>(cells) * sizeof(std::uint32_t));
            count_rows<1>(idx, job, rg, task.r0, task.r1, Lp, cells, task.M);
            return;
        }
        std::unique_ptr<std::uint32_t[]> sub(new std::uint32_t[static_cast<std::size_t>(ns * cells)]());
        if (ns == 2)
            count_rows<2>(idx, job, rg, task.r0, task.r1, Lp, cells, sub.get());
        else
            count_rows<4>(idx, job, rg, task.r0, task.r1, Lp, cells, sub.get());
        for (i64 e = 0; e < cells; ++e) {
            std::uint32_t v = 0;
            for (int q = 0; q < ns; ++q) v += sub[static_cast<std::size_t>(q * cells + e)];
            task.M[e] = v;
        }
    });

    // Merge the chunks of each offset in chunk order; totals over [0, L)^2.
    // Small outputs are merged and written by one thread.
    const int tw = cells * n < (i64{1} << 20) ? 1 : threads;
    std::vector<u64> totals(static_cast<std::size_t>(n), 0);
    parallel_for(n, tw, [&](i64 k) {
        std::uint32_t* M = first[static_cast<std::size_t>(k)];
        const i64 c = chunks[static_cast<std::size_t>(k)];
        for (i64 t = 1; t < c; ++t) {
            const std::uint32_t* Q = M + t * cells;
            for (i64 e = 0; e < cells; ++e) M[e] += Q[e];
        }
        if (!job.normed) return;  // totals only divide normalised output
        u64 s = 0;
        for (i64 i = 0; i < L; ++i)
            for (i64 j = 0; j < L; ++j) s += M[i * Lp + j];
        totals[static_cast<std::size_t>(k)] = s;
    });

    // Write (L, L, n) in C order, rows of i split into blocks.
    const i64 block = std::max<i64>(1, (i64{1} << 16) / std::max<i64>(1, L * n));
    const i64 n_blocks = (L + block - 1) / block;
    std::vector<double> inv(static_cast<std::size_t>(n));
    for (i64 k = 0; k < n; ++k) {
        u64 s = totals[static_cast<std::size_t>(k)];
        if (job.symmetric) s *= 2;
        inv[static_cast<std::size_t>(k)] = s == 0 ? 1.0 : static_cast<double>(s);
    }
    parallel_for(n_blocks, tw, [&](i64 bidx) {
        const i64 i0 = bidx * block, i1 = std::min(L, i0 + block);
        for (i64 i = i0; i < i1; ++i) {
            for (i64 j = 0; j < L; ++j) {
                const i64 o = (i * L + j) * n;
                if (!job.symmetric && !job.normed) {
                    for (i64 k = 0; k < n; ++k) job.out_counts[o + k] = first[static_cast<std::size_t>(k)][i * Lp + j];
                    continue;
                }
                for (i64 k = 0; k < n; ++k) {
                    const std::uint32_t* M = first[static_cast<std::size_t>(k)];
                    std::uint32_t c = M[i * Lp + j];
                    if (job.symmetric) c += M[j * Lp + i];
                    if (job.normed)
                        job.out_normed[o + k] = static_cast<double>(c) / inv[static_cast<std::size_t>(k)];
                    else
                        job.out_counts[o + k] = c;
                }
            }
        }
    });
}

template <class T, class I>
GlcmStatus run_prepared(const T* src, const GlcmJob& job, int threads) {
    const i64 N = job.depth * job.height * job.width;
    const bool masked = job.mask != nullptr;
    const i64 Lp = job.levels + (masked ? 1 : 0);
    const I sentinel = static_cast<I>(masked ? job.levels : 0);
    std::unique_ptr<I[]> idx(new I[static_cast<std::size_t>(N)]);
    const i64 n_chunks = (N + kPrepChunk - 1) / kPrepChunk;
    std::vector<i64> bad(static_cast<std::size_t>(n_chunks)), inside(static_cast<std::size_t>(n_chunks));
    parallel_for(n_chunks, threads, [&](i64 c) {
        const i64 b = c * kPrepChunk, e = std::min(N, b + kPrepChunk);
        prepare_chunk<T, I>(src, job.mask, idx.get(), b, e, static_cast<u64>(job.levels), sentinel,
                            bad[static_cast<std::size_t>(c)], inside[static_cast<std::size_t>(c)]);
    });
    GlcmStatus st;
    for (i64 c = 0; c < n_chunks; ++c) {
        st.out_of_range += bad[static_cast<std::size_t>(c)];
        st.in_mask += inside[static_cast<std::size_t>(c)];
    }
    if (st.out_of_range > 0 || st.in_mask == 0) return st;
    count_all<I>(idx.get(), job, Lp, threads);
    return st;
}

template <class T>
GlcmStatus run_direct(const T* src, const GlcmJob& job, int threads) {
    const i64 N = job.depth * job.height * job.width;
    GlcmStatus st;
    st.in_mask = N;
    if (static_cast<u64>(job.levels) <= static_cast<u64>(std::numeric_limits<T>::max())) {
        const i64 n_chunks = (N + kPrepChunk - 1) / kPrepChunk;
        std::vector<i64> bad(static_cast<std::size_t>(n_chunks));
        parallel_for(n_chunks, threads, [&](i64 c) {
            const i64 b = c * kPrepChunk, e = std::min(N, b + kPrepChunk);
            check_chunk<T>(src, b, e, static_cast<u64>(job.levels), bad[static_cast<std::size_t>(c)]);
        });
        for (i64 v : bad) st.out_of_range += v;
        if (st.out_of_range > 0) return st;
    }
    count_all<T>(src, job, job.levels, threads);
    return st;
}

template <class T>
GlcmStatus run_typed(const GlcmJob& job, int threads) {
    const T* src = static_cast<const T*>(job.image);
    const i64 top = job.levels + (job.mask != nullptr ? 1 : 0);  // largest index + 1
    if constexpr (std::is_unsigned<T>::value && sizeof(T) <= 4) {
        if (job.mask == nullptr) return run_direct<T>(src, job, threads);
    }
    if (top <= 256) return run_prepared<T, std::uint8_t>(src, job, threads);
    if (top <= 65536) return run_prepared<T, std::uint16_t>(src, job, threads);
    return run_prepared<T, std::uint32_t>(src, job, threads);
}

// ---- features -----------------------------------------------------------

constexpr double kEps = std::numeric_limits<double>::epsilon();  // numpy.spacing(1)

struct DirScratch {
    std::vector<double> px, py, psum, pdiff;
};

struct Entry {
    std::int32_t i, j;
    double v;
};

// The non-zero cells of direction k, in row-major order, and its total
// (exact for counts; sequential in cell order for floats). Also marks the
// levels with a non-zero row or column in this direction. Directions are
// independent, so they are gathered in parallel with identical results.
template <class S>
void gather_one(const S* P, i64 L, i64 n, i64 k, std::vector<Entry>& entries, double& total,
                std::uint8_t* present) {
    u64 ti = 0;
    double tf = 0.0;
    // Count first: one allocation of the exact size (no regrowth copies).
    std::size_t nnz = 0;
    const S* pk = P + k;
    for (i64 c = 0; c < L * L; ++c) nnz += pk[c * n] != 0;
    // Branch-free: every cell is written at the next slot, which advances
    // only past non-zero cells (half-filled matrices defeat the predictor).
    entries.resize(nnz + 1);
    Entry* out = entries.data();
    std::size_t m = 0;
    for (i64 i = 0; i < L; ++i) {
        const S* row = P + i * L * n + k;
        std::uint8_t any = 0;
        for (i64 j = 0; j < L; ++j) {
            const S v = row[j * n];
            const std::uint8_t nz = v != 0;
            if constexpr (std::is_same<S, std::uint32_t>::value)
                ti += v;
            else
                tf += v;
            out[m] = {static_cast<std::int32_t>(i), static_cast<std::int32_t>(j), static_cast<double>(v)};
            m += nz;
            any |= nz;
            present[j] |= nz;
        }
        present[i] |= any;
    }
    entries.resize(nnz);
    if constexpr (std::is_same<S, std::uint32_t>::value)
        total = static_cast<double>(ti);
    else
        total = tf;
}

// Natural logs of the counts 0..kLogTable-1 (counts are integers; most are small).
constexpr i64 kLogTable = 4096;
const double* log_table() {
    static const std::vector<double> t = [] {
        std::vector<double> v(static_cast<std::size_t>(kLogTable), 0.0);
        for (i64 c = 1; c < kLogTable; ++c) v[static_cast<std::size_t>(c)] = std::log(static_cast<double>(c));
        return v;
    }();
    return t.data();
}


void features_one(const GlcmFeatureJob& job, std::vector<Entry>& ent, i64 k, i64 Ng, DirScratch& s) {
    const i64 L = job.levels;
    const double total = job.out_totals[k];
    const double div = total == 0.0 ? 1.0 : total;
    const double ln_div = std::log(div);
    const double* lnc = log_table();

    s.px.assign(static_cast<std::size_t>(L), 0.0);
    s.py.assign(static_cast<std::size_t>(L), 0.0);
    s.psum.assign(static_cast<std::size_t>(2 * L - 1), 0.0);
    s.pdiff.assign(static_cast<std::size_t>(L), 0.0);
    double* px = s.px.data();
    double* py = s.py.data();
    double* psum = s.psum.data();
    double* pdiff = s.pdiff.data();

    // Pass 1: normalise, marginals, p_{x+y}, p_{x-y}, sum p^2, max p, sum p*i*j,
    // entropies of p (skimage's ln p from a table of ln(count) for counts).
    double asm_ = 0.0, pmax = 0.0, autoc = 0.0, hxy = 0.0, ent_ln = 0.0;
    const bool rad = job.want_radiomics;
    const bool need_log = rad || job.want_entropy;
    for (Entry& e : ent) {
        const i64 i = e.i, j = e.j;
        const double c = e.v;
        const double v = c / div;
        e.v = v;
        px[i] += v;
        py[j] += v;
        psum[i + j] += v;
        pdiff[i > j ? i - j : j - i] += v;
        asm_ += v * v;
        pmax = std::max(pmax, v);
        if (need_log) {
            double lnv;
            if (job.is_u32)
                lnv = (c < static_cast<double>(kLogTable) ? lnc[static_cast<i64>(c)] : std::log(c)) - ln_div;
            else
                lnv = std::log(v);
            if (rad) {
                autoc += v * static_cast<double>(i) * static_cast<double>(j);
                hxy -= v * std::log2(v + kEps);  // as the twin: Imc2 cancels HXY2 - HXY
            }
            ent_ln -= v * lnv;
        }
    }
    double ux = 0.0, uy = 0.0;
    for (i64 i = 0; i < L; ++i) {
        ux += static_cast<double>(i) * px[i];
        uy += static_cast<double>(i) * py[i];
    }
    double varx = 0.0, vary = 0.0;
    for (i64 i = 0; i < L; ++i) {
        const double dx = static_cast<double>(i) - ux, dy = static_cast<double>(i) - uy;
        varx += px[i] * dx * dx;
        vary += py[i] * dy * dy;
    }
    // Pass 2: centred covariance and HXY1 (needs the marginals).
    double cov = 0.0, hxy1 = 0.0;
    for (const Entry& e : ent) {
        const double v = e.v;
        cov += v * (static_cast<double>(e.i) - ux) * (static_cast<double>(e.j) - uy);
        if (rad) hxy1 -= v * std::log2(px[e.i] * py[e.j] + kEps);
    }
    double contrast = 0.0, dissim = 0.0, homog = 0.0;
    for (i64 d = 0; d < L; ++d) {
        const double kd = static_cast<double>(d);
        contrast += kd * kd * pdiff[d];
        dissim += kd * pdiff[d];
        homog += pdiff[d] / (1.0 + kd * kd);
    }
    if (job.want_skimage) {
        double* o = job.out_skimage + k * kGlcmSkimageProps;
        const double si = std::sqrt(varx), sj = std::sqrt(vary);
        o[0] = contrast;
        o[1] = dissim;
        o[2] = homog;
        o[3] = asm_;
        o[4] = std::sqrt(asm_);
        o[5] = (si < 1e-15 || sj < 1e-15) ? 1.0 : cov / (si * sj);
        o[6] = ux;
        o[7] = varx;
        o[8] = std::sqrt(varx);
        o[9] = ent_ln;
    }
    if (!rad) return;
    double* o = job.out_radiomics + k * kGlcmRadiomics;
    if (total == 0.0) {
        for (int f = 0; f < kGlcmRadiomics; ++f) o[f] = std::numeric_limits<double>::quiet_NaN();
        return;
    }
    double hx = 0.0, hy = 0.0;
    for (i64 i = 0; i < L; ++i) {
        hx -= px[i] * std::log2(px[i] + kEps);
        hy -= py[i] * std::log2(py[i] + kEps);
    }
    // HXY2 term by term as the twin (Imc1 / Imc2 subtract nearly equal entropies).
    double hxy2 = 0.0;
    for (i64 i = 0; i < L; ++i) {
        if (px[i] == 0.0) continue;
        for (i64 j = 0; j < L; ++j) {
            if (py[j] == 0.0) continue;
            const double q = px[i] * py[j];
            hxy2 -= q * std::log2(q + kEps);
        }
    }
    double cp = 0.0, cs = 0.0, ct = 0.0, savg = 0.0, sent = 0.0;
    const double um = ux + uy;
    for (i64 t = 0; t < 2 * L - 1; ++t) {
        const double v = psum[t];
        if (v == 0.0) continue;
        const double c = static_cast<double>(t) - um;
        const double c2 = c * c;
        ct += v * c2;
        cs += v * c2 * c;
        cp += v * c2 * c2;
        savg += static_cast<double>(t) * v;
        sent -= v * std::log2(v + kEps);
    }
    double dent = 0.0, dvar = 0.0, id = 0.0, idmn = 0.0, idn = 0.0, invvar = 0.0;
    const double ng = static_cast<double>(std::max<i64>(Ng, 1));  // only level 0: Ng = 1
    for (i64 d = 0; d < L; ++d) {
        const double v = pdiff[d];
        if (v == 0.0) continue;
        const double kd = static_cast<double>(d);
        dent -= v * std::log2(v + kEps);
        dvar += v * (kd - dissim) * (kd - dissim);
        id += v / (1.0 + kd);
        idmn += v / (1.0 + kd * kd / (ng * ng));
        idn += v / (1.0 + kd / ng);
        if (d > 0) invvar += v / (kd * kd);
    }
    const double sxy = std::sqrt(varx) * std::sqrt(vary);
    const double corr = sxy == 0.0 ? 1.0 : cov / (sxy + kEps);
    const double hmax = std::max(hx, hy);
    const double imc1 = hmax != 0.0 ? (hxy - hxy1) / hmax : 0.0;
    double imc2;
    if (hxy2 == hxy) {
        imc2 = 0.0;
    } else {
        const double a = 1.0 - std::exp(-2.0 * (hxy2 - hxy));
        imc2 = a < 0.0 ? std::numeric_limits<double>::quiet_NaN() : std::sqrt(a);
    }
    // Order: see _RADIOMICS_CORE in python/medfuse/texture.py.
    o[0] = autoc;     // Autocorrelation
    o[1] = cp;        // ClusterProminence
    o[2] = cs;        // ClusterShade
    o[3] = ct;        // ClusterTendency
    o[4] = contrast;  // Contrast
    o[5] = corr;      // Correlation
    o[6] = dissim;    // DifferenceAverage
    o[7] = dent;      // DifferenceEntropy
    o[8] = dvar;      // DifferenceVariance
    o[9] = id;        // Id
    o[10] = homog;    // Idm
    o[11] = idmn;     // Idmn
    o[12] = idn;      // Idn
    o[13] = imc1;     // Imc1
    o[14] = imc2;     // Imc2
    o[15] = invvar;   // InverseVariance
    o[16] = ux;       // JointAverage
    o[17] = asm_;     // JointEnergy
    o[18] = hxy;      // JointEntropy
    o[19] = pmax;     // MaximumProbability
    o[20] = savg;     // SumAverage
    o[21] = sent;     // SumEntropy
    o[22] = varx;     // SumSquares
}

template <class S>
void features_typed(const GlcmFeatureJob& job, int threads) {
    const S* P = static_cast<const S*>(job.P);
    const i64 L = job.levels, n = job.n;
    // Levels present: a non-zero entry in row i or column i, any direction.
    for (i64 i = 0; i < L; ++i) job.present[i] = 0;
    std::vector<std::vector<Entry>> entries(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> pres(static_cast<std::size_t>(n * L), 0);
    // The gather is a cheap streaming pass: threads only for large inputs.
    const int gt = L * L * n < (i64{1} << 21) ? 1 : threads;
    parallel_for(n, gt, [&](i64 k) {
        gather_one<S>(P, L, n, k, entries[static_cast<std::size_t>(k)], job.out_totals[k],
                      pres.data() + k * L);
    });
    for (i64 k = 0; k < n; ++k)
        for (i64 i = 0; i < L; ++i) job.present[i] |= pres[static_cast<std::size_t>(k * L + i)];
    i64 Ng = 0;
    for (i64 i = 0; i < L; ++i)
        if (job.present[i]) Ng = i;
    // Few non-zero cells: one thread (waking the pool and splitting the work
    // would cost more than it saves). The threshold was set when every call
    // started its threads; it has not been re-measured with the persistent pool.
    i64 nnz = 0;
    for (const auto& e : entries) nnz += static_cast<i64>(e.size());
    const int nt = nnz < (i64{1} << 17) ? 1 : threads;
    parallel_for(n, nt, [&](i64 k) {
        DirScratch s;
        features_one(job, entries[static_cast<std::size_t>(k)], k, Ng, s);
    });
}

}  // namespace
}  // namespace detail

GlcmStatus glcm(const GlcmJob& job, int threads) {
    switch (job.dtype) {
        case GlcmInput::u8: return detail::run_typed<std::uint8_t>(job, threads);
        case GlcmInput::u16: return detail::run_typed<std::uint16_t>(job, threads);
        case GlcmInput::u32: return detail::run_typed<std::uint32_t>(job, threads);
        case GlcmInput::u64: return detail::run_typed<std::uint64_t>(job, threads);
        case GlcmInput::i8: return detail::run_typed<std::int8_t>(job, threads);
        case GlcmInput::i16: return detail::run_typed<std::int16_t>(job, threads);
        case GlcmInput::i32: return detail::run_typed<std::int32_t>(job, threads);
        case GlcmInput::i64: return detail::run_typed<std::int64_t>(job, threads);
    }
    throw std::invalid_argument("glcm: unknown dtype");
}

void glcm_features(const GlcmFeatureJob& job, int threads) {
    if (job.is_u32)
        detail::features_typed<std::uint32_t>(job, threads);
    else
        detail::features_typed<double>(job, threads);
}

}  // namespace medfuse
