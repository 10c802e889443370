// Connected components by runs:
//  (1) the foreground runs of every row, from 64-voxel bit masks (one bit per
//      voxel, run starts and ends found with count-trailing-zeros), threaded
//      over fixed row blocks;
//  (2) union of each row's runs with the overlapping runs of its earlier
//      neighbour rows (union-find whose root is always the smallest run id,
//      i.e. the first run in raster order). Blocks are whole z slabs in 3D
//      (whole images in 2D split into row bands): the unions inside a block
//      touch only that block's runs and run in parallel; the unions across
//      block borders follow in rounds that join groups of blocks pairwise;
//  (3) roots numbered in run order (per-block counts, a prefix sum) and every
//      row written (threaded).
// Full connectivity (26 in 3D, 8 in 2D) runs the same three steps on runs of
// 2 x 2 voxel columns instead (label_pairs below).
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

#include "common/large_buffer.hpp"
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

// Number of runs starting in word m: set bits whose left neighbour is clear
// (`carry`: bit 63 of the previous word, updated).
inline i64 run_starts(std::uint64_t m, std::uint64_t& carry) {
    const i64 c = __builtin_popcountll(m & ~((m << 1) | carry));
    carry = m >> 63;
    return c;
}

// Number of foreground runs in one row.
inline i64 row_run_count(const std::uint8_t* p, i64 w) {
    i64 count = 0;
    std::uint64_t carry = 0;
    for (i64 x0 = 0; x0 < w; x0 += 64) count += run_starts(nonzero_bits(p + x0, std::min<i64>(64, w - x0)), carry);
    return count;
}

// Appends the runs of set bits of a row given word by word (columns x0 ..
// x0 + 63 in order), then finish(w) closes a run that reaches the row's end.
template <class I>
struct RunAppender {
    std::vector<Run<I>>& runs;
    bool open = false;  // a run continues from the previous word
    I start = 0;
    void word(std::uint64_t m, i64 x0) {
        std::uint64_t edges = m ^ ((m << 1) | static_cast<std::uint64_t>(open));  // a run starts or ends at bit k
        while (edges) {
            const int k = ctz64(edges);
            edges &= edges - 1;
            if (!open)
                start = static_cast<I>(x0 + k);
            else
                runs.push_back(Run<I>{start, static_cast<I>(x0 + k)});
            open = !open;
        }
    }
    void finish(i64 w) {
        if (open) runs.push_back(Run<I>{start, static_cast<I>(w)});
    }
};

// Appends the foreground runs of one row.
template <class I>
void row_runs(const std::uint8_t* p, i64 w, std::vector<Run<I>>& runs) {
    RunAppender<I> out{runs};
    for (i64 x0 = 0; x0 < w; x0 += 64) out.word(nonzero_bits(p + x0, std::min<i64>(64, w - x0)), x0);
    out.finish(w);
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

// Always true: voxel runs that overlap (within the x reach) touch.
struct Overlap {
    template <class R>
    bool operator()(const R&, const R&) const {
        return true;
    }
};

// Unions of the overlapping runs of two rows (runs a: ids a0.., runs b: ids
// b0..; x reach 0 or 1) for which touch(A, B) holds. A run's root is looked
// up once per stretch of overlaps; both lists advance without branches on
// the data.
template <class I, class Touch = Overlap>
void union_runs(I* __restrict__ parent, const Run<I>* __restrict__ ra, I a0, I na, const Run<I>* __restrict__ rb,
                I b0, I nb, I reach, Touch touch = Touch()) {
    I i = 0, j = 0;
    I root_a = -1;  // root of run i, once looked up
    while (i < na && j < nb) {
        const Run<I> A = ra[i];
        const Run<I> B = rb[j];
        if (A.begin < B.end + reach && B.begin < A.end + reach && touch(A, B)) {
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

// Global run ids from the blocks' runs: on entry row_begin[r + 1] holds the
// run count of row r, on return the first id of row r + 1 (a prefix sum);
// rows[r] points at row r's runs inside its block's vector, block_first[b]
// is block b's first id (block_first[n_blocks] the total, returned).
template <class R, class F0, class F1>
i64 index_runs(const std::vector<std::vector<R>>& block_runs, F0 block_r0, F1 block_r1, std::vector<i64>& row_begin,
               std::vector<i64>& block_first, std::vector<const R*>& rows) {
    const i64 n_blocks = static_cast<i64>(block_runs.size());
    const i64 n_rows = static_cast<i64>(row_begin.size()) - 1;
    block_first.assign(static_cast<std::size_t>(n_blocks + 1), 0);
    rows.assign(static_cast<std::size_t>(n_rows), nullptr);
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
    return total;
}

struct Nb {
    i64 dz, dy, reach;
};

// Unions across block borders, in rounds that join groups of 1, 2, 4, ...
// blocks pairwise: a border b = (2i + 1) * step joins the group of blocks
// [b - step, b) to [b, b + step), each merged already, so the borders of one
// round touch disjoint groups (their find_root walks stay inside them) and
// run in parallel.
template <class Fn>
void join_borders(i64 n_blocks, int threads, Fn&& border) {
    for (i64 step = 1; step < n_blocks; step *= 2) {
        const i64 n = (n_blocks - step + 2 * step - 1) / (2 * step);
        parallel_for(n, threads, [&](i64 i) { border((2 * i + 1) * step); });
    }
}

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
    // Global run ids; each row's runs stay in its block's vector.
    std::vector<i64> block_first;
    std::vector<const R*> rows;
    const i64 total = index_runs(block_runs, block_r0, block_r1, row_begin, block_first, rows);

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
    join_borders(n_blocks, threads, [&](i64 b) {
        const i64 r0 = block_r0(b);
        const i64 span = d > 1 ? h : 1;
        for (i64 r = r0; r < std::min(block_r1(b), r0 + span); ++r) union_row(r, r0, false);
    });

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


// ---- Full connectivity (26 in 3D, 8 in 2D): runs of 2 x 2 voxel columns ----
//
// Under full connectivity the voxels of a "pair row" -- the voxel rows
// (2Z + lz, 2Y + ly), lz, ly in {0, 1}, seen as columns of up to four voxels
// along x -- form one component per run of nonempty columns: the voxels of one
// column are pairwise neighbours, and so are any voxel of column x and any of
// column x + 1. Labelling pair rows by their column runs takes about a tenth
// of the runs of the voxel rows on dense random masks (the percolating worst
// case). A pair-row run touches a run of an earlier neighbour pair row
// (dZ, dY) in {(0,-1), (-1,-1), (-1,0), (-1,1)} when a voxel of its face
// towards that pair row (e.g. its rows with ly = 0 for dY = -1) lies within one
// column of a voxel of the other run's facing rows; each pair of overlapping
// runs is tested once on 64-column words. Numbering is a raster scan of the
// voxel rows (first voxel of each component, scipy's order), serial and cheap:
// only runs whose root has no label yet are looked at voxel by voxel.

// Bits [lo, hi) of word k (columns 64k .. 64k + 63).
inline std::uint64_t range_bits(i64 k, i64 lo, i64 hi) {
    const i64 a = std::max<i64>(lo - 64 * k, 0), b = std::min<i64>(hi - 64 * k, 64);
    if (a >= b) return 0;
    const std::uint64_t upper = b == 64 ? ~std::uint64_t(0) : ((std::uint64_t(1) << b) - 1);
    return upper & ~((std::uint64_t(1) << a) - 1);
}

// Whether some face voxel of run A (columns [A.begin, A.end), face bits fa)
// is within one column of some face voxel of run B (fb).
template <class I>
inline bool runs_touch(const std::uint64_t* fa, Run<I> A, const std::uint64_t* fb, Run<I> B, i64 words) {
    const i64 lo = std::max<i64>(A.begin, i64(B.begin) - 1), hi = std::min<i64>(A.end, i64(B.end) + 1);
    if (lo >= hi) return false;
    auto gb = [&](i64 k) -> std::uint64_t {  // B's face bits in word k, inside run B only
        if (k < 0 || k >= words) return 0;
        return fb[k] & range_bits(k, B.begin, B.end);
    };
    for (i64 k = lo >> 6; k <= (hi - 1) >> 6; ++k) {
        const std::uint64_t prev = gb(k - 1), cur = gb(k), next = gb(k + 1);
        const std::uint64_t near = cur | (cur << 1) | (prev >> 63) | (cur >> 1) | (next << 63);
        if (fa[k] & near & range_bits(k, lo, hi)) return true;
    }
    return false;
}

// Appends the runs of set bits of one row of `words` 64-bit words (w columns).
template <class I>
void bit_runs(const std::uint64_t* m, i64 words, i64 w, std::vector<Run<I>>& runs) {
    RunAppender<I> out{runs};
    for (i64 k = 0; k < words; ++k) out.word(m[k], 64 * k);
    out.finish(w);
}

template <class I>
i64 label_pairs(const LabelJob& job, int threads) {
    using R = Run<I>;
    const i64 w = job.width, h = job.height, d = job.depth;
    const i64 gz = d > 1 ? 2 : 1;  // voxel slices per pair row
    const i64 D = (d + gz - 1) / gz, H = (h + 1) / 2;
    const i64 n_pr = D * H;  // pair rows
    const i64 words = (w + 63) / 64;
    // Bit rows: 4 per pair row (lz * 2 + ly), then the column mask (their OR).
    const i64 slots = 5;
    std::vector<std::uint64_t> bits(static_cast<std::size_t>(n_pr * slots * words), 0);
    auto bit_row = [&](i64 pr, i64 slot) { return bits.data() + (pr * slots + slot) * words; };

    // Blocks of pair rows: whole pair slices in 3D, bands in 2D.
    i64 per_block;
    if (d > 1) {
        const i64 slice_voxels = std::max<i64>(1, gz * h * w);
        per_block = std::max<i64>({1, kMinBlockVoxels / slice_voxels, (D + kBlocks - 1) / kBlocks}) * H;
    } else {
        per_block = std::max<i64>({8, kMinBlockVoxels / std::max<i64>(1, 2 * w), (H + kBlocks - 1) / kBlocks});
    }
    const i64 n_blocks = (n_pr + per_block - 1) / per_block;
    auto block_r0 = [&](i64 b) { return b * per_block; };
    auto block_r1 = [&](i64 b) { return std::min(n_pr, (b + 1) * per_block); };

    std::vector<std::vector<R>> block_runs(static_cast<std::size_t>(n_blocks));
    std::vector<i64> row_begin(static_cast<std::size_t>(n_pr + 1), 0);
    parallel_for(n_blocks, threads, [&](i64 b) {
        auto& runs = block_runs[static_cast<std::size_t>(b)];
        i64 n_runs = 0;
        for (i64 pr = block_r0(b); pr < block_r1(b); ++pr) {
            const i64 Z = pr / H, Y = pr % H;
            std::uint64_t* col = bit_row(pr, 4);
            for (i64 lz = 0; lz < gz; ++lz) {
                const i64 z = gz * Z + lz;
                if (z >= d) break;
                for (i64 ly = 0; ly < 2; ++ly) {
                    const i64 y = 2 * Y + ly;
                    if (y >= h) break;
                    const std::uint8_t* p = job.mask + (z * h + y) * w;
                    std::uint64_t* row = bit_row(pr, lz * 2 + ly);
                    for (i64 k = 0; k < words; ++k) {
                        row[k] = nonzero_bits(p + 64 * k, std::min<i64>(64, w - 64 * k));
                        col[k] |= row[k];
                    }
                }
            }
            std::uint64_t carry = 0;
            for (i64 k = 0; k < words; ++k) n_runs += run_starts(col[k], carry);
        }
        runs.reserve(static_cast<std::size_t>(n_runs));
        for (i64 pr = block_r0(b); pr < block_r1(b); ++pr) {
            const std::size_t before = runs.size();
            bit_runs<I>(bit_row(pr, 4), words, w, runs);
            row_begin[static_cast<std::size_t>(pr + 1)] = static_cast<i64>(runs.size() - before);
        }
    });
    std::vector<i64> block_first;
    std::vector<const R*> rows;
    const i64 total = index_runs(block_runs, block_r0, block_r1, row_begin, block_first, rows);

    // The face bit rows of pair row pr towards its neighbour (dZ, dY) (or,
    // with `earlier`, those of the neighbour towards pr), OR-ed into `out`.
    auto face = [&](i64 pr, i64 dZ, i64 dY, bool earlier, std::uint64_t* out) {
        std::fill(out, out + words, std::uint64_t(0));
        for (i64 lz = 0; lz < gz; ++lz) {
            if (dZ == -1 && lz != (earlier ? gz - 1 : 0)) continue;
            for (i64 ly = 0; ly < 2; ++ly) {
                if (dY == -1 && ly != (earlier ? 1 : 0)) continue;
                if (dY == 1 && ly != (earlier ? 0 : 1)) continue;
                const std::uint64_t* row = bit_row(pr, lz * 2 + ly);
                for (i64 k = 0; k < words; ++k) out[k] |= row[k];
            }
        }
    };
    std::vector<I> parent_buf(static_cast<std::size_t>(total));
    I* parent = parent_buf.data();
    const i64 nbs[4][2] = {{0, -1}, {-1, -1}, {-1, 0}, {-1, 1}};
    auto union_row = [&](i64 r, i64 q_lo, bool inside, std::uint64_t* fa, std::uint64_t* fb) {
        const i64 Z = r / H, Y = r % H;
        const i64 a0 = row_begin[static_cast<std::size_t>(r)];
        const i64 na = row_begin[static_cast<std::size_t>(r + 1)] - a0;
        if (na == 0) return;
        const R* ra = rows[static_cast<std::size_t>(r)];
        for (const auto& nb : nbs) {
            const i64 ZZ = Z + nb[0], YY = Y + nb[1];
            if (ZZ < 0 || YY < 0 || YY >= H) continue;
            const i64 q = ZZ * H + YY;
            if ((q >= q_lo) != inside) continue;
            const i64 b0 = row_begin[static_cast<std::size_t>(q)];
            const i64 nb_runs = row_begin[static_cast<std::size_t>(q + 1)] - b0;
            if (nb_runs == 0) continue;
            const R* rb = rows[static_cast<std::size_t>(q)];
            face(r, nb[0], nb[1], false, fa);
            face(q, nb[0], nb[1], true, fb);
            union_runs<I>(parent, ra, static_cast<I>(a0), static_cast<I>(na), rb, static_cast<I>(b0),
                          static_cast<I>(nb_runs), I(1),
                          [&](const R& A, const R& B) { return runs_touch<I>(fa, A, fb, B, words); });
        }
    };
    parallel_for(n_blocks, threads, [&](i64 b) {
        std::vector<std::uint64_t> scratch(static_cast<std::size_t>(2 * words));
        for (i64 k = block_first[static_cast<std::size_t>(b)]; k < block_first[static_cast<std::size_t>(b + 1)]; ++k)
            parent[k] = static_cast<I>(k);
        const i64 r0 = block_r0(b);
        for (i64 r = r0; r < block_r1(b); ++r) union_row(r, r0, true, scratch.data(), scratch.data() + words);
    });
    join_borders(n_blocks, threads, [&](i64 b) {
        std::vector<std::uint64_t> scratch(static_cast<std::size_t>(2 * words));
        const i64 r0 = block_r0(b);
        const i64 span = d > 1 ? H : 1;
        for (i64 r = r0; r < std::min(block_r1(b), r0 + span); ++r)
            union_row(r, r0, false, scratch.data(), scratch.data() + words);
    });

    // Roots, then labels in raster order of the first voxel: voxel rows in
    // order, the runs of each in x order; a run whose root is labelled
    // already is skipped without looking at its voxels.
    std::vector<I> root_buf(static_cast<std::size_t>(total));
    I* root = root_buf.data();
    parallel_for(n_blocks, threads, [&](i64 b) {
        for (i64 k = block_first[static_cast<std::size_t>(b)]; k < block_first[static_cast<std::size_t>(b + 1)]; ++k)
            root[k] = find_root_readonly<I>(parent, static_cast<I>(k));
    });
    I* lab = parent;  // reused: lab[root] once numbered, 0 before
    std::fill(lab, lab + total, I(0));
    i64 count = 0;
    for (i64 z = 0; z < d; ++z)
        for (i64 y = 0; y < h; ++y) {
            const i64 pr = (z / gz) * H + y / 2;
            const i64 k0 = row_begin[static_cast<std::size_t>(pr)], k1 = row_begin[static_cast<std::size_t>(pr + 1)];
            const std::uint64_t* row = bit_row(pr, (z % gz) * 2 + y % 2);
            const R* rr = rows[static_cast<std::size_t>(pr)];
            for (i64 k = k0; k < k1; ++k) {
                const I rt = root[k];
                if (lab[rt] != 0) continue;
                const R run = rr[k - k0];
                for (i64 wd = run.begin >> 6; wd <= (i64(run.end) - 1) >> 6; ++wd)
                    if (row[wd] & range_bits(wd, run.begin, run.end)) {
                        if (count >= std::numeric_limits<std::int32_t>::max())
                            throw std::overflow_error("label: more than 2**31 - 1 components do not fit in int32");
                        lab[rt] = static_cast<I>(++count);
                        break;
                    }
            }
        }
    // Every voxel row written: the labels of its pair row's runs (one row of
    // values per pair row, shared by its voxel rows) where the mask is set.
    parallel_for(n_blocks, threads, [&](i64 b) {
        std::vector<std::int32_t> values(static_cast<std::size_t>(w));
        std::int32_t* vr = values.data();
        for (i64 pr = block_r0(b); pr < block_r1(b); ++pr) {
            const i64 Z = pr / H, Y = pr % H;
            const R* rr = rows[static_cast<std::size_t>(pr)];
            const i64 k0 = row_begin[static_cast<std::size_t>(pr)], k1 = row_begin[static_cast<std::size_t>(pr + 1)];
            i64 x = 0;
            for (i64 k = k0; k < k1; ++k) {
                const R run = rr[k - k0];
                const auto value = static_cast<std::int32_t>(lab[root[k]]);
                for (; x < run.begin; ++x) vr[x] = 0;
                for (; x < run.end; ++x) vr[x] = value;
            }
            for (; x < w; ++x) vr[x] = 0;
            for (i64 lz = 0; lz < gz; ++lz) {
                const i64 z = gz * Z + lz;
                if (z >= d) break;
                for (i64 ly = 0; ly < 2; ++ly) {
                    const i64 y = 2 * Y + ly;
                    if (y >= h) break;
                    const std::uint8_t* __restrict__ p = job.mask + (z * h + y) * w;
                    std::int32_t* __restrict__ o = job.out + (z * h + y) * w;
                    for (i64 i = 0; i < w; ++i) o[i] = vr[i] & -static_cast<std::int32_t>(p[i] != 0);
                }
            }
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
    // Full connectivity (26 in 3D, 8 in a 2D image) labels pair rows; the
    // other neighbourhoods label voxel runs.
    const bool full = job.rank == 3 || (job.depth == 1 && job.rank == 2);
    if (n < std::numeric_limits<std::int32_t>::max())
        return full ? detail::label_pairs<std::int32_t>(job, threads) : detail::label_impl<std::int32_t>(job, threads);
    return full ? detail::label_pairs<std::int64_t>(job, threads) : detail::label_impl<std::int64_t>(job, threads);
}

void fill_holes(const std::uint8_t* mask, std::int64_t depth, std::int64_t height, std::int64_t width, int ndim,
                int rank, std::uint8_t* out, int threads) {
    using i64 = std::int64_t;
    if (depth < 1 || height < 1 || width < 1) throw std::invalid_argument("fill_holes: every axis needs at least one element");
    if (ndim != 2 && ndim != 3) throw std::invalid_argument("fill_holes: ndim must be 2 or 3");
    if (ndim == 2 && depth != 1) throw std::invalid_argument("fill_holes: a 2D image has depth 1");
    const i64 n = depth * height * width;
    const i64 rows = depth * height;
    const i64 band = std::max<i64>(1, (i64(1) << 16) / width);  // rows per parallel task
    const i64 n_bands = (rows + band - 1) / band;
    // The background as a mask (bytes 0/1), labelled.
    const LargeBuffer<std::uint8_t> bg(static_cast<std::size_t>(n));
    parallel_for(n_bands, threads, [&](i64 b) {
        const i64 i0 = b * band * width, i1 = std::min(rows, (b + 1) * band) * width;
        const std::uint8_t* __restrict__ m = mask;
        std::uint8_t* __restrict__ o = bg.get();
        for (i64 i = i0; i < i1; ++i) o[i] = static_cast<std::uint8_t>(m[i] == 0);
    });
    const LargeBuffer<std::int32_t> lab(static_cast<std::size_t>(n));
    LabelJob job;
    job.mask = bg.get();
    job.depth = depth;
    job.height = height;
    job.width = width;
    job.rank = rank;
    job.out = lab.get();
    const i64 count = label(job, threads);
    // fill[k]: 1 for the foreground (label 0) and the holes, 0 for the
    // background components on the border.
    std::vector<std::uint8_t> fill(static_cast<std::size_t>(count + 1), 1);
    auto outside_row = [&](i64 z, i64 y) {
        const std::int32_t* r = lab.get() + (z * height + y) * width;
        for (i64 x = 0; x < width; ++x) fill[static_cast<std::size_t>(r[x])] = 0;
    };
    if (ndim == 3) {
        for (i64 y = 0; y < height; ++y) {
            outside_row(0, y);
            outside_row(depth - 1, y);
        }
    }
    for (i64 z = 0; z < depth; ++z) {
        outside_row(z, 0);
        outside_row(z, height - 1);
        for (i64 y = 0; y < height; ++y) {
            const std::int32_t* r = lab.get() + (z * height + y) * width;
            fill[static_cast<std::size_t>(r[0])] = 0;
            fill[static_cast<std::size_t>(r[width - 1])] = 0;
        }
    }
    fill[0] = 1;
    const std::uint8_t* __restrict__ f = fill.data();
    parallel_for(n_bands, threads, [&](i64 b) {
        const i64 i0 = b * band * width, i1 = std::min(rows, (b + 1) * band) * width;
        const std::int32_t* __restrict__ l = lab.get();
        std::uint8_t* __restrict__ o = out;
        for (i64 i = i0; i < i1; ++i) o[i] = f[l[i]];
    });
}

}  // namespace medfuse
