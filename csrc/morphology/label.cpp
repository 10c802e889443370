// Connected components by runs: (1) find the foreground runs of every row
// (threaded over fixed row blocks), (2) union the runs of each row with the
// overlapping runs of its already-visited neighbour rows (union-find whose
// root is always the smallest run id, i.e. the first run in raster order),
// (3) number the roots in run order and write the runs (threaded).
//
// Step 2 is sequential: it is a merge of sorted run lists, O(runs), and on
// 128x512x512 CT masks takes a small share of the time next to steps 1 and 3
// (which touch every voxel). Results never depend on the thread count: the
// blocks are fixed by the image size and the union order is the raster order.
#include "morphology/label.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "common/parallel.hpp"

namespace medfuse {
namespace detail {
namespace {

constexpr std::int64_t kRowsPerBlock = 256;

struct Run {
    std::int64_t begin, end;  // [begin, end) along x
};

inline std::uint64_t load64(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline bool has_zero_byte(std::uint64_t v) {
    return ((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull) != 0;
}

// Appends the foreground runs of one row.
void row_runs(const std::uint8_t* p, std::int64_t w, std::vector<Run>& runs) {
    std::int64_t x = 0;
    while (x < w) {
        while (x + 8 <= w && load64(p + x) == 0) x += 8;
        while (x < w && p[x] == 0) ++x;
        if (x == w) break;
        const std::int64_t s = x;
        while (x + 8 <= w && !has_zero_byte(load64(p + x))) x += 8;
        while (x < w && p[x] != 0) ++x;
        runs.push_back(Run{s, x});
    }
}

inline std::int64_t find_root(std::vector<std::int64_t>& parent, std::int64_t i) {
    while (parent[static_cast<std::size_t>(i)] != i) {
        const std::int64_t g = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(i)])];
        parent[static_cast<std::size_t>(i)] = g;  // path halving
        i = g;
    }
    return i;
}

inline void unite(std::vector<std::int64_t>& parent, std::int64_t a, std::int64_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b)
        parent[static_cast<std::size_t>(b)] = a;
    else if (b < a)
        parent[static_cast<std::size_t>(a)] = b;
}

}  // namespace
}  // namespace detail

std::int64_t label(const LabelJob& job, int threads) {
    using detail::Run;
    if (job.depth < 1 || job.height < 1 || job.width < 1)
        throw std::invalid_argument("label: every axis needs at least one element");
    if (job.rank < 1 || job.rank > 3) throw std::invalid_argument("label: rank must be 1, 2 or 3");
    const std::int64_t w = job.width, h = job.height, d = job.depth;
    // Small images: thread start-up costs more than the parallel steps save.
    if (d * h * w < (std::int64_t{1} << 21)) threads = 1;
    const std::int64_t n_rows = d * h;
    const std::int64_t n_blocks = (n_rows + detail::kRowsPerBlock - 1) / detail::kRowsPerBlock;

    // (1) runs per row block.
    std::vector<std::vector<Run>> block_runs(static_cast<std::size_t>(n_blocks));
    std::vector<std::int64_t> row_begin(static_cast<std::size_t>(n_rows + 1), 0);
    parallel_for(n_blocks, threads, [&](std::int64_t b) {
        auto& runs = block_runs[static_cast<std::size_t>(b)];
        const std::int64_t r0 = b * detail::kRowsPerBlock;
        const std::int64_t r1 = std::min(n_rows, r0 + detail::kRowsPerBlock);
        for (std::int64_t r = r0; r < r1; ++r) {
            detail::row_runs(job.mask + r * w, w, runs);
            row_begin[static_cast<std::size_t>(r + 1)] = static_cast<std::int64_t>(runs.size());
        }
    });
    // Row offsets are per block; make them global.
    std::int64_t total = 0;
    for (std::int64_t b = 0; b < n_blocks; ++b) {
        const std::int64_t r0 = b * detail::kRowsPerBlock;
        const std::int64_t r1 = std::min(n_rows, r0 + detail::kRowsPerBlock);
        row_begin[static_cast<std::size_t>(r0)] = total;
        for (std::int64_t r = r0 + 1; r <= r1; ++r) {
            if (r < r1)
                row_begin[static_cast<std::size_t>(r)] += total;
        }
        total += static_cast<std::int64_t>(block_runs[static_cast<std::size_t>(b)].size());
    }
    row_begin[static_cast<std::size_t>(n_rows)] = total;
    std::vector<Run> runs(static_cast<std::size_t>(total));
    parallel_for(n_blocks, threads, [&](std::int64_t b) {
        const auto& src = block_runs[static_cast<std::size_t>(b)];
        const std::int64_t r0 = b * detail::kRowsPerBlock;
        std::copy(src.begin(), src.end(), runs.begin() + row_begin[static_cast<std::size_t>(r0)]);
    });
    block_runs.clear();
    block_runs.shrink_to_fit();

    // (2) union with the earlier neighbour rows (dz, dy); x reach 1 if the
    // diagonal step along x still fits in the rank.
    struct Nb {
        std::int64_t dz, dy, reach;
    };
    std::vector<Nb> nbs;
    const std::int64_t cand[4][2] = {{0, -1}, {-1, -1}, {-1, 0}, {-1, 1}};
    for (const auto& c : cand) {
        const int nz = (c[0] != 0) + (c[1] != 0);
        if (nz > job.rank) continue;
        nbs.push_back(Nb{c[0], c[1], nz + 1 <= job.rank ? 1 : 0});
    }
    std::vector<std::int64_t> parent(static_cast<std::size_t>(total));
    for (std::int64_t i = 0; i < total; ++i) parent[static_cast<std::size_t>(i)] = i;
    for (std::int64_t z = 0; z < d; ++z) {
        for (std::int64_t y = 0; y < h; ++y) {
            const std::int64_t r = z * h + y;
            const std::int64_t a0 = row_begin[static_cast<std::size_t>(r)];
            const std::int64_t a1 = row_begin[static_cast<std::size_t>(r + 1)];
            if (a0 == a1) continue;
            for (const auto& nb : nbs) {
                const std::int64_t zz = z + nb.dz, yy = y + nb.dy;
                if (zz < 0 || yy < 0 || yy >= h) continue;
                const std::int64_t q = zz * h + yy;
                std::int64_t j = row_begin[static_cast<std::size_t>(q)];
                const std::int64_t j1 = row_begin[static_cast<std::size_t>(q + 1)];
                std::int64_t i = a0;
                while (i < a1 && j < j1) {
                    const Run& A = runs[static_cast<std::size_t>(i)];
                    const Run& B = runs[static_cast<std::size_t>(j)];
                    if (A.begin < B.end + nb.reach && B.begin < A.end + nb.reach) detail::unite(parent, i, j);
                    if (A.end < B.end)
                        ++i;
                    else
                        ++j;
                }
            }
        }
    }

    // (3) number the roots in raster order, then write every row.
    std::vector<std::int32_t> run_label(static_cast<std::size_t>(total));
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < total; ++i) {
        const std::int64_t root = detail::find_root(parent, i);
        if (root == i) {
            if (count == std::numeric_limits<std::int32_t>::max())
                throw std::overflow_error("label: more than 2**31 - 1 components do not fit in int32");
            run_label[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(++count);
        } else {
            run_label[static_cast<std::size_t>(i)] = run_label[static_cast<std::size_t>(root)];
        }
    }
    parent.clear();
    parent.shrink_to_fit();
    parallel_for(n_blocks, threads, [&](std::int64_t b) {
        const std::int64_t r0 = b * detail::kRowsPerBlock;
        const std::int64_t r1 = std::min(n_rows, r0 + detail::kRowsPerBlock);
        for (std::int64_t r = r0; r < r1; ++r) {
            std::int32_t* o = job.out + r * w;
            std::int64_t x = 0;
            for (std::int64_t k = row_begin[static_cast<std::size_t>(r)]; k < row_begin[static_cast<std::size_t>(r + 1)];
                 ++k) {
                const Run& R = runs[static_cast<std::size_t>(k)];
                std::fill(o + x, o + R.begin, 0);
                std::fill(o + R.begin, o + R.end, run_label[static_cast<std::size_t>(k)]);
                x = R.end;
            }
            std::fill(o + x, o + w, 0);
        }
    });
    return count;
}

}  // namespace medfuse
