// Connected components by runs:
//  (1) the foreground runs of every row, from 64-voxel bit masks (one bit per
//      voxel, run starts and ends found with count-trailing-zeros), threaded
//      over fixed row blocks;
//  (2) union of each row's runs with the overlapping runs of its earlier
//      neighbour rows (union-find whose root is always the smallest run id,
//      i.e. the first run in raster order). Blocks are whole z slabs in 3D
//      (whole images in 2D split into row bands): the unions inside a block
//      touch only that block's runs and run in parallel; the unions across
//      block borders follow serially;
//  (3) roots numbered in run order (per-block counts, a prefix sum) and every
//      row written (threaded).
// Results never depend on the thread count: blocks are fixed by the image
// size, and the partition and its smallest ids do not depend on union order.
// Run ids and x are int32 while the image has fewer than 2^31 voxels (half
// the memory traffic), int64 otherwise.
#include "morphology/label.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/parallel.hpp"

namespace medfuse {
namespace detail {
namespace {

using i64 = std::int64_t;

// Voxels per block at least, and blocks per image at most (roughly).
constexpr i64 kMinBlockVoxels = i64(1) << 17;
constexpr i64 kBlocks = 16;

inline int ctz64(std::uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(v);
#else
    int n = 0;
    while (!(v & 1)) {
        v >>= 1;
        ++n;
    }
    return n;
#endif
}

// Bit k set when p[k] != 0, for k < n <= 64.
inline std::uint64_t nonzero_bits(const std::uint8_t* p, i64 n) {
    std::uint64_t m = 0;
    i64 k = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; k + 16 <= n; k += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k));
        const auto z = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)));
        m |= static_cast<std::uint64_t>(~z & 0xFFFFu) << k;
    }
#endif
    for (; k < n; ++k) m |= static_cast<std::uint64_t>(p[k] != 0) << k;
    return m;
}

template <class I>
struct Run {
    I begin, end;  // [begin, end) along x
};

// Number of foreground runs in one row (run starts: a set bit whose left
// neighbour is clear).
inline i64 row_run_count(const std::uint8_t* p, i64 w) {
    i64 count = 0;
    std::uint64_t carry = 0;  // bit 63 of the previous word
    for (i64 x0 = 0; x0 < w; x0 += 64) {
        const i64 n = std::min<i64>(64, w - x0);
        const std::uint64_t m = nonzero_bits(p + x0, n);
        count += __builtin_popcountll(m & ~((m << 1) | carry));
        carry = m >> 63;
    }
    return count;
}

// Appends the foreground runs of one row.
template <class I>
void row_runs(const std::uint8_t* p, i64 w, std::vector<Run<I>>& runs) {
    bool open = false;  // a run continues from the previous word
    I start = 0;
    for (i64 x0 = 0; x0 < w; x0 += 64) {
        const i64 n = std::min<i64>(64, w - x0);
        const std::uint64_t m = nonzero_bits(p + x0, n);
        const std::uint64_t prev = (m << 1) | static_cast<std::uint64_t>(open);
        std::uint64_t edges = m ^ prev;  // bit k: a run starts (m) or ends (!m) at k
        while (edges) {
            const int k = ctz64(edges);
            edges &= edges - 1;
            if (!open) {
                start = static_cast<I>(x0 + k);
            } else {
                runs.push_back(Run<I>{start, static_cast<I>(x0 + k)});
            }
            open = !open;
        }
        // open now tells whether bit n-1 is set (edges toggled it per change)
        if (n < 64) break;
    }
    if (open) runs.push_back(Run<I>{start, static_cast<I>(w)});
}

template <class I>
inline I find_root(I* parent, I i) {
    while (parent[i] != i) {
        const I g = parent[parent[i]];
        parent[i] = g;  // path halving
        i = g;
    }
    return i;
}

template <class I>
inline I find_root_readonly(const I* parent, I i) {
    while (parent[i] != i) i = parent[i];
    return i;
}

// Unions of the overlapping runs of two rows (runs a: ids a0.., runs b: ids
// b0..; x reach 0 or 1). A run's root is looked up once per stretch of
// overlaps; both lists advance without branches on the data.
template <class I>
void union_runs(I* __restrict__ parent, const Run<I>* __restrict__ ra, I a0, I na, const Run<I>* __restrict__ rb,
                I b0, I nb, I reach) {
    I i = 0, j = 0;
    I root_a = -1;  // root of run i, once looked up
    while (i < na && j < nb) {
        const Run<I> A = ra[i];
        const Run<I> B = rb[j];
        if (A.begin < B.end + reach && B.begin < A.end + reach) {
            if (root_a < 0) root_a = find_root<I>(parent, a0 + i);
            const I root_b = find_root<I>(parent, b0 + j);
            if (root_b < root_a) {
                parent[root_a] = root_b;
                root_a = root_b;
            } else if (root_a < root_b) {
                parent[root_b] = root_a;
            }
        }
        // Advance the run that ends first (both on a tie: neither can
        // reach the other's next run, which starts a gap of >= 1 later).
        const I step_i = static_cast<I>(A.end <= B.end);
        const I step_j = static_cast<I>(B.end <= A.end);
        i += step_i;
        j += step_j;
        root_a = step_i ? I(-1) : root_a;
    }
}

struct Nb {
    i64 dz, dy, reach;
};

template <class I>
i64 label_impl(const LabelJob& job, int threads) {
    using R = Run<I>;
    const i64 w = job.width, h = job.height, d = job.depth;
    const i64 n_rows = d * h;
    // Blocks: whole slices in 3D, row bands in 2D; at most ~kBlocks of them
    // (fewer unions left for the serial pass across borders), each of at
    // least kMinBlockVoxels.
    i64 rows_per_block;
    if (d > 1) {
        const i64 slices = std::max<i64>({1, kMinBlockVoxels / std::max<i64>(1, h * w), (d + kBlocks - 1) / kBlocks});
        rows_per_block = slices * h;
    } else {
        rows_per_block = std::max<i64>({16, kMinBlockVoxels / std::max<i64>(1, w), (h + kBlocks - 1) / kBlocks});
    }
    const i64 n_blocks = (n_rows + rows_per_block - 1) / rows_per_block;
    auto block_r0 = [&](i64 b) { return b * rows_per_block; };
    auto block_r1 = [&](i64 b) { return std::min(n_rows, (b + 1) * rows_per_block); };

    // (1) runs per block; row_begin[r + 1] = runs in row r for now (the
    // prefix sum below turns it into the first run id of row r + 1).
    std::vector<std::vector<R>> block_runs(static_cast<std::size_t>(n_blocks));
    std::vector<i64> row_begin(static_cast<std::size_t>(n_rows + 1), 0);
    parallel_for(n_blocks, threads, [&](i64 b) {
        auto& runs = block_runs[static_cast<std::size_t>(b)];
        // Exactly the runs the block has (a count pass: reserving the worst
        // case, (w + 1) / 2 runs per row, commits that memory where the
        // kernel does not overcommit).
        i64 n_runs = 0;
        for (i64 r = block_r0(b); r < block_r1(b); ++r) n_runs += row_run_count(job.mask + r * w, w);
        runs.reserve(static_cast<std::size_t>(n_runs));
        for (i64 r = block_r0(b); r < block_r1(b); ++r) {
            const std::size_t before = runs.size();
            row_runs<I>(job.mask + r * w, w, runs);
            row_begin[static_cast<std::size_t>(r + 1)] = static_cast<i64>(runs.size() - before);
        }
    });
    // Global run ids: prefix sum of the row counts; each row's runs stay in
    // its block's vector (rows[r] points at them).
    std::vector<i64> block_first(static_cast<std::size_t>(n_blocks + 1), 0);
    std::vector<const R*> rows(static_cast<std::size_t>(n_rows));
    for (i64 b = 0; b < n_blocks; ++b) {
        const R* base = block_runs[static_cast<std::size_t>(b)].data();
        const i64 first = row_begin[static_cast<std::size_t>(block_r0(b))];
        block_first[static_cast<std::size_t>(b)] = first;
        for (i64 r = block_r0(b); r < block_r1(b); ++r) {
            rows[static_cast<std::size_t>(r)] = base + (row_begin[static_cast<std::size_t>(r)] - first);
            row_begin[static_cast<std::size_t>(r + 1)] += row_begin[static_cast<std::size_t>(r)];
        }
    }
    const i64 total = row_begin[static_cast<std::size_t>(n_rows)];
    block_first[static_cast<std::size_t>(n_blocks)] = total;

    // (2) unions with the earlier neighbour rows (dz, dy); x reach 1 if the
    // diagonal step along x still fits in the rank.
    std::vector<Nb> nbs;
    const i64 cand[4][2] = {{0, -1}, {-1, -1}, {-1, 0}, {-1, 1}};
    for (const auto& c : cand) {
        const int nz = (c[0] != 0) + (c[1] != 0);
        if (nz > job.rank) continue;
        nbs.push_back(Nb{c[0], c[1], nz + 1 <= job.rank ? 1 : 0});
    }
    std::vector<I> parent_buf(static_cast<std::size_t>(total));
    I* parent = parent_buf.data();
    // Unions of row r with its neighbour rows q: those in [q_lo, r) when
    // `inside`, else those before q_lo.
    auto union_row = [&](i64 r, i64 q_lo, bool inside) {
        const i64 z = r / h, y = r % h;
        const i64 a0 = row_begin[static_cast<std::size_t>(r)];
        const i64 a1 = row_begin[static_cast<std::size_t>(r + 1)];
        if (a0 == a1) return;
        for (const auto& nb : nbs) {
            const i64 zz = z + nb.dz, yy = y + nb.dy;
            if (zz < 0 || yy < 0 || yy >= h) continue;
            const i64 q = zz * h + yy;
            if ((q >= q_lo) != inside) continue;
            const i64 b0 = row_begin[static_cast<std::size_t>(q)];
            const i64 b1 = row_begin[static_cast<std::size_t>(q + 1)];
            if (b0 == b1) continue;
            union_runs<I>(parent, rows[static_cast<std::size_t>(r)], static_cast<I>(a0), static_cast<I>(a1 - a0),
                          rows[static_cast<std::size_t>(q)], static_cast<I>(b0), static_cast<I>(b1 - b0),
                          static_cast<I>(nb.reach));
        }
    };
    parallel_for(n_blocks, threads, [&](i64 b) {
        for (i64 k = block_first[static_cast<std::size_t>(b)]; k < block_first[static_cast<std::size_t>(b + 1)]; ++k)
            parent[k] = static_cast<I>(k);
        const i64 r0 = block_r0(b);
        for (i64 r = r0; r < block_r1(b); ++r) union_row(r, r0, true);
    });
    // Across block borders: only the rows whose neighbours lie in an
    // earlier block (the first slice, or first row, of each block).
    for (i64 b = 1; b < n_blocks; ++b) {
        const i64 r0 = block_r0(b);
        const i64 span = d > 1 ? h : 1;
        for (i64 r = r0; r < std::min(block_r1(b), r0 + span); ++r) union_row(r, r0, false);
    }

    // (3) roots numbered in raster order, then every row written.
    std::vector<I> root_buf(static_cast<std::size_t>(total));
    I* root = root_buf.data();
    std::vector<i64> block_roots(static_cast<std::size_t>(n_blocks), 0);
    parallel_for(n_blocks, threads, [&](i64 b) {
        i64 c = 0;
        for (i64 k = block_first[static_cast<std::size_t>(b)]; k < block_first[static_cast<std::size_t>(b + 1)]; ++k) {
            const I rt = find_root_readonly<I>(parent, static_cast<I>(k));
            root[k] = rt;
            c += static_cast<i64>(rt == static_cast<I>(k));
        }
        block_roots[static_cast<std::size_t>(b)] = c;
    });
    i64 count = 0;
    for (i64 b = 0; b < n_blocks; ++b) {
        const i64 c = block_roots[static_cast<std::size_t>(b)];
        block_roots[static_cast<std::size_t>(b)] = count;
        count += c;
    }
    if (count > std::numeric_limits<std::int32_t>::max())
        throw std::overflow_error("label: more than 2**31 - 1 components do not fit in int32");
    // Root labels first (parent no longer needed: reuse it for the labels).
    I* lab = parent;
    parallel_for(n_blocks, threads, [&](i64 b) {
        i64 next = block_roots[static_cast<std::size_t>(b)];
        for (i64 k = block_first[static_cast<std::size_t>(b)]; k < block_first[static_cast<std::size_t>(b + 1)]; ++k)
            if (root[k] == static_cast<I>(k)) lab[k] = static_cast<I>(++next);
    });
    parallel_for(n_blocks, threads, [&](i64 b) {
        for (i64 r = block_r0(b); r < block_r1(b); ++r) {
            std::int32_t* o = job.out + r * w;
            const R* rr = rows[static_cast<std::size_t>(r)];
            const i64 k0 = row_begin[static_cast<std::size_t>(r)], k1 = row_begin[static_cast<std::size_t>(r + 1)];
            i64 x = 0;
            for (i64 k = k0; k < k1; ++k) {
                const R& run = rr[k - k0];
                const auto value = static_cast<std::int32_t>(lab[root[k]]);
                for (; x < run.begin; ++x) o[x] = 0;
                for (; x < run.end; ++x) o[x] = value;
            }
            for (; x < w; ++x) o[x] = 0;
        }
    });
    return count;
}

}  // namespace
}  // namespace detail

std::int64_t label(const LabelJob& job, int threads) {
    if (job.depth < 1 || job.height < 1 || job.width < 1)
        throw std::invalid_argument("label: every axis needs at least one element");
    if (job.rank < 1 || job.rank > 3) throw std::invalid_argument("label: rank must be 1, 2 or 3");
    const std::int64_t n = job.depth * job.height * job.width;
    if (n < std::numeric_limits<std::int32_t>::max()) return detail::label_impl<std::int32_t>(job, threads);
    return detail::label_impl<std::int64_t>(job, threads);
}

}  // namespace medfuse
