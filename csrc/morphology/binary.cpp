// Erosion/dilation by shifted-row AND/OR over a padded copy of the image.
// The inner loop is a byte-wise AND/OR of two contiguous rows, which the
// compiler vectorises. Rows are split into fixed blocks (by image size, not
// thread count), so results never depend on the number of threads.
#include "morphology/binary.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/cpu.hpp"
#include "common/large_buffer.hpp"
#include "common/parallel.hpp"

namespace medfuse {
namespace baseline {
#include "morphology/binary_kernels.hpp"
}  // namespace baseline

namespace {

// The row loops of the active ISA (binary_kernels.hpp).
struct RowOps {
    decltype(&baseline::op_row_u8) op_row = baseline::op_row_u8;
    decltype(&baseline::box_lines_u8) box_lines = baseline::box_lines_u8;
    decltype(&baseline::box_flat_u8) box_flat = baseline::box_flat_u8;
};

RowOps row_ops() {
    RowOps ops;
#if defined(MEDFUSE_HAVE_AVX512)
    if (active_isa() == Isa::avx512) {
        ops.op_row = avx512::op_row_u8, ops.box_lines = avx512::box_lines_u8;
        ops.box_flat = avx512::box_flat_u8;
        return ops;
    }
#endif
#if defined(MEDFUSE_HAVE_AVX2)
    if (active_isa() != Isa::baseline)
        ops.op_row = avx2::op_row_u8, ops.box_lines = avx2::box_lines_u8,
        ops.box_flat = avx2::box_flat_u8;
#endif
    return ops;
}

constexpr std::int64_t kRowsPerBlock = 64;
constexpr std::int64_t kMinVoxelsForThreads = std::int64_t{1} << 23;  // voxels x offsets

// Pixel x of a row by the box of radius r along x (extended: outside reads the
// border; `kills`: the border is the operation's annihilator).
template <bool Dilate>
std::uint8_t box_edge(const std::uint8_t* row, std::int64_t w, std::int64_t x, std::int64_t r, bool kills) {
    if (kills && (x - r < 0 || x + r >= w)) return Dilate ? 1 : 0;
    std::uint8_t a = Dilate ? 0 : 1;
    for (std::int64_t q = std::max<std::int64_t>(0, x - r); q <= std::min(w - 1, x + r); ++q)
        a = baseline::box_op<Dilate>(a, row[q]);
    return a;
}

template <bool Dilate>
void box_morph(const MorphJob& job, const std::int64_t* r, int threads) {
    using i64 = std::int64_t;
    const RowOps ops = row_ops();
    const i64 d = job.depth, h = job.height, w = job.width;
    const bool kills = job.border == (Dilate ? 1 : 0);
    // x then y for rows [y0, y1) of slice z (the band's x rows and their halo
    // of ry rows are computed into `rows`), row y written to dst + (y - y0) w.
    auto xy_band = [&](i64 z, i64 y0, i64 y1, std::uint8_t* rows, std::uint8_t* dst) {
        const i64 ya = std::max<i64>(0, y0 - r[1]), yb = std::min(h, y1 + r[1]);
        const std::uint8_t* const src = job.in + (z * h + ya) * w;
        const i64 rx = r[2];
        // The band's rows as one line (one call instead of one per row; a
        // 512-pixel row is only 8 vectors), then each row's end pixels
        // (x < rx, x >= w - rx: every pixel of a row no wider than the box),
        // whose windows crossed into the neighbouring rows or the border.
        if (w > 2 * rx) ops.box_flat(Dilate, src + rx, rows + rx, (yb - ya) * w - 2 * rx, rx);
        const i64 lo = std::min(rx, w), hi = std::max(lo, w - rx);
        for (i64 y = 0; y < yb - ya; ++y) {
            for (i64 x = 0; x < lo; ++x) rows[y * w + x] = box_edge<Dilate>(src + y * w, w, x, rx, kills);
            for (i64 x = hi; x < w; ++x) rows[y * w + x] = box_edge<Dilate>(src + y * w, w, x, rx, kills);
        }
        // The rows held start at ya = max(0, y0 - ry) and end at min(h, y1 + ry),
        // so a window leaves them exactly where it leaves the image. Rows whose
        // window lies inside the image are one call (their lines are consecutive).
        const i64 yi0 = std::max(y0, r[1]), yi1 = std::min(y1, h - r[1]);
        for (i64 y = y0; y < y1; ++y) {
            if (y == yi0 && yi1 > yi0) {
                ops.box_lines(Dilate, rows, w, yb - ya, y - ya, r[1], (yi1 - yi0) * w, kills, dst + (y - y0) * w);
                y = yi1 - 1;
                continue;
            }
            ops.box_lines(Dilate, rows, w, yb - ya, y - ya, r[1], w, kills, dst + (y - y0) * w);
        }
    };
    // xy_band's row scratch for bands of up to `band` rows (and their halo)
    auto rows_size = [&](i64 band) { return static_cast<std::size_t>(std::min(h, band + 2 * r[1]) * w); };
    if (r[0] == 0) {  // 2D, or no z extent: per slice and band of 64 rows, straight into out
        const i64 band = 64;
        const i64 bands = (h + band - 1) / band;
        parallel_for(d * bands, threads, [&](i64 t) {
            const i64 z = t / bands, y0 = (t % bands) * band, y1 = std::min(h, y0 + band);
            const std::unique_ptr<std::uint8_t[]> rows(new std::uint8_t[rows_size(band)]);
            xy_band(z, y0, y1, rows.get(), job.out + (z * h + y0) * w);
        });
        return;
    }
    // 3D: a task owns a band of rows through every slice, sweeping z: the x-y
    // result of each slice's band goes to a ring of 2 rz + 1 band-slices, and
    // out's slice z is the z pass over the ring. The ring is doubled (each
    // band-slice also stored R slots on), so the window's slices always lie
    // at consecutive slots, as box_lines reads them. (A whole-volume x-y
    // scratch was as large as the volume, and its first touch alone, the
    // kernel zeroing fresh pages, took more time than the three passes.)
    const i64 band = std::clamp<i64>(h / (4 * static_cast<i64>(std::max(threads, 1))), 8, 64);
    const i64 bands = (h + band - 1) / band;
    const i64 rz = r[0], R = 2 * rz + 1;
    parallel_for(bands, threads, [&](i64 t) {
        const i64 y0 = t * band, y1 = std::min(h, y0 + band), n = (y1 - y0) * w;
        const std::unique_ptr<std::uint8_t[]> rows(new std::uint8_t[rows_size(band)]);
        const std::unique_ptr<std::uint8_t[]> ring(new std::uint8_t[static_cast<std::size_t>(2 * R * n)]);
        auto slot = [&](i64 q) { return ring.get() + (q % R) * n; };
        i64 done = 0;  // band-slices [0, done) computed
        for (i64 z = 0; z < d; ++z) {
            for (; done <= std::min(d - 1, z + rz); ++done) {
                std::uint8_t* s0 = slot(done);
                xy_band(done, y0, y1, rows.get(), s0);
                std::memcpy(s0 + R * n, s0, static_cast<std::size_t>(n));
            }
            std::uint8_t* const dst = job.out + (z * h + y0) * w;
            if (z >= rz && z + rz < d) {  // the window's slices z - rz .. z + rz, consecutive from slot(z - rz)
                ops.box_lines(Dilate, slot(z - rz), n, R, rz, rz, n, kills, dst);
            } else if (kills) {  // the window reaches the border, the operation's annihilator
                std::memset(dst, Dilate ? 1 : 0, static_cast<std::size_t>(n));
            } else {  // the slices inside the volume
                const i64 q0 = std::max<i64>(0, z - rz), q1 = std::min(d - 1, z + rz);
                std::memcpy(dst, slot(q0), static_cast<std::size_t>(n));
                for (i64 q = q0 + 1; q <= q1; ++q) ops.op_row(Dilate, dst, slot(q), n);
            }
        }
    });
}

// One iteration of any structure, straight from the input: a task takes a
// band of rows of one slice as one line and applies each offset to it with one
// row-op call (offsets' source rows of the band are consecutive too). Where an
// offset's rows leave the image the band part reads the border: nothing (the
// neutral value) or the annihilator. An x shift makes the pixels within rx of
// a row's ends read the neighbouring row: those are recomputed one by one
// afterwards. (Per-row calls cost more than the 512-byte rows' work.)
void single_pass(const MorphJob& job, std::int64_t rx, int threads) {
    using i64 = std::int64_t;
    const RowOps ops = row_ops();
    const i64 d = job.depth, h = job.height, w = job.width;
    const bool dilate = job.dilate;
    const bool kills = dilate ? job.border == 1 : job.border == 0;
    const std::uint8_t identity = dilate ? 0 : 1, killer = dilate ? 1 : 0;
    const i64 band = std::max<i64>(1, std::min<i64>(h, (i64(1) << 15) / std::max<i64>(1, w)));
    const i64 bands = (h + band - 1) / band;
    parallel_for(d * bands, threads, [&](i64 t) {
        const i64 z = t / bands, y0 = (t % bands) * band, y1 = std::min(h, y0 + band);
        std::uint8_t* const acc = job.out + (z * h + y0) * w;
        const i64 n = (y1 - y0) * w;
        std::memset(acc, identity, static_cast<std::size_t>(n));
        for (i64 k = 0; k < job.n_offsets; ++k) {
            const i64* o = job.offsets + 3 * k;
            const i64 zz = z + o[0];
            if (zz < 0 || zz >= d) {  // the whole band reads the border
                if (kills) std::memset(acc, killer, static_cast<std::size_t>(n));
                continue;
            }
            // rows y with y + oy inside the image: [ya, yb)
            const i64 ya = std::clamp<i64>(-o[1], y0, y1), yb = std::clamp<i64>(h - o[1], ya, y1);
            if (kills) {
                std::memset(acc, killer, static_cast<std::size_t>((ya - y0) * w));
                std::memset(acc + (yb - y0) * w, killer, static_cast<std::size_t>((y1 - yb) * w));
            }
            if (ya >= yb) continue;
            // element i of the rows [ya, yb) reads element i + ox of the shifted rows; the first and last
            // |ox| elements would read outside them and are left for the end-pixel pass
            const i64 ox = o[2], m = (yb - ya) * w;
            const std::uint8_t* src = job.in + ((zz * h + ya + o[1]) * w);
            const i64 i0 = std::max<i64>(0, -ox), i1 = std::min(m, m - ox);
            if (i1 > i0) ops.op_row(dilate, acc + (ya - y0) * w + i0, src + i0 + ox, i1 - i0);
        }
        if (rx == 0) return;
        // end pixels of each row: x < rx or x >= w - rx, every offset with the border rule
        for (i64 y = y0; y < y1; ++y) {
            std::uint8_t* row = acc + (y - y0) * w;
            auto pixel = [&](i64 x) {
                std::uint8_t a = identity;
                for (i64 k = 0; k < job.n_offsets; ++k) {
                    const i64* o = job.offsets + 3 * k;
                    const i64 zz = z + o[0], yy = y + o[1], xx = x + o[2];
                    const std::uint8_t v = (zz < 0 || zz >= d || yy < 0 || yy >= h || xx < 0 || xx >= w)
                                               ? job.border
                                               : job.in[(zz * h + yy) * w + xx];
                    a = dilate ? static_cast<std::uint8_t>(a | v) : static_cast<std::uint8_t>(a & v);
                }
                row[x] = a;
            };
            const i64 lo = std::min(rx, w), hi = std::max(lo, w - rx);
            for (i64 x = 0; x < lo; ++x) pixel(x);
            for (i64 x = hi; x < w; ++x) pixel(x);
        }
    });
}

}  // namespace

void binary_morph(const MorphJob& job, int threads) {
    const std::int64_t d = job.depth, h = job.height, w = job.width;
    if (d < 1 || h < 1 || w < 1) throw std::invalid_argument("binary_morph: empty image");
    // Below ~1M voxels a pass takes well under a millisecond: starting threads
    // costs more than it saves (measured: 2 threads slower on 512x512).
    if (d * h * w * job.n_offsets < kMinVoxelsForThreads) threads = 1;
    if (job.n_offsets < 1) throw std::invalid_argument("binary_morph: the structure has no element");
    if (job.border > 1) throw std::invalid_argument("binary_morph: border must be 0 or 1");
    std::int64_t r[3] = {0, 0, 0};
    for (std::int64_t k = 0; k < job.n_offsets; ++k)
        for (int a = 0; a < 3; ++a) r[a] = std::max(r[a], std::abs(job.offsets[3 * k + a]));
    // A centred box (all (2r+1)^ndim offsets; offsets are distinct) with one
    // iteration: three separable passes.
    if (job.iterations == 1 && job.n_offsets == (2 * r[0] + 1) * (2 * r[1] + 1) * (2 * r[2] + 1)) {
        if (job.dilate)
            box_morph<true>(job, r, threads);
        else
            box_morph<false>(job, r, threads);
        return;
    }
    if (job.iterations == 1) {
        single_pass(job, r[2], threads);
        return;
    }
    // Several iterations: a padded copy that each iteration reads (and the
    // next one rewrites). Offsets reaching past the image only ever read the
    // border: clamp the padding, not the offsets, so that the scratch stays small.
    const std::int64_t pz = std::min(r[0], d), py = std::min(r[1], h), px = std::min(r[2], w);
    const std::int64_t Pd = d + 2 * pz, Ph = h + 2 * py, Pw = w + 2 * px;
    // The padded copy is filled row by row in parallel (border rows, the
    // border columns and the image rows), not value-initialised first: a
    // serial fill (page faults included) does not scale with threads.
    const LargeBuffer<std::uint8_t> pad_buf(static_cast<std::size_t>(Pd * Ph * Pw));
    std::uint8_t* const pad = pad_buf.get();
    auto interior = [&](std::int64_t z, std::int64_t y) { return pad + ((z + pz) * Ph + (y + py)) * Pw + px; };
    const std::int64_t n_pad_rows = Pd * Ph;
    parallel_for((n_pad_rows + kRowsPerBlock - 1) / kRowsPerBlock, threads, [&](std::int64_t b) {
        const std::int64_t r1 = std::min(n_pad_rows, (b + 1) * kRowsPerBlock);
        for (std::int64_t pr = b * kRowsPerBlock; pr < r1; ++pr) {
            std::uint8_t* row = pad + pr * Pw;
            const std::int64_t z = pr / Ph - pz, y = pr % Ph - py;
            if (z < 0 || z >= d || y < 0 || y >= h) {
                std::memset(row, job.border, static_cast<std::size_t>(Pw));
                continue;
            }
            std::memset(row, job.border, static_cast<std::size_t>(px));
            std::memcpy(row + px, job.in + (z * h + y) * w, static_cast<std::size_t>(w));
            std::memset(row + px + w, job.border, static_cast<std::size_t>(px));
        }
    });
    const RowOps ops = row_ops();
    const std::int64_t n_rows = d * h;
    const std::int64_t n_blocks = (n_rows + kRowsPerBlock - 1) / kRowsPerBlock;
    std::vector<std::int64_t> changed(static_cast<std::size_t>(n_blocks));
    const bool until_stable = job.iterations < 1;
    for (std::int64_t it = 0; until_stable || it < job.iterations; ++it) {
        parallel_for(n_blocks, threads, [&](std::int64_t b) {
            const std::int64_t r1 = std::min(n_rows, (b + 1) * kRowsPerBlock);
            for (std::int64_t rr = b * kRowsPerBlock; rr < r1; ++rr) {
                const std::int64_t z = rr / h, y = rr % h;
                std::uint8_t* acc = job.out + rr * w;
                std::memset(acc, job.dilate ? 0 : 1, static_cast<std::size_t>(w));
                for (std::int64_t k = 0; k < job.n_offsets; ++k) {
                    const std::int64_t* o = job.offsets + 3 * k;
                    const std::int64_t zz = z + o[0], yy = y + o[1];
                    const std::uint8_t* src;  // element x0 of the shifted row
                    std::int64_t x0 = 0, x1 = w;  // the part of the row that reads the image
                    if (zz < -pz || zz >= d + pz || yy < -py || yy >= h + py) {
                        src = nullptr;  // the whole shifted row is border
                    } else {
                        x0 = std::max<std::int64_t>(0, -px - o[2]);
                        x1 = std::min<std::int64_t>(w, w + px - o[2]);
                        // src[x] is padded element x + px + o[2] of the row (valid on [x0, x1)).
                        src = x0 >= x1 ? nullptr
                                       : pad + (((zz + pz) * Ph + (yy + py)) * Pw + px + o[2] + x0);
                    }
                    const bool border_kills = job.dilate ? job.border == 1 : job.border == 0;
                    if (src == nullptr) {
                        if (border_kills) std::memset(acc, job.dilate ? 1 : 0, static_cast<std::size_t>(w));
                        continue;
                    }
                    if (border_kills) {
                        std::memset(acc, job.dilate ? 1 : 0, static_cast<std::size_t>(x0));
                        std::memset(acc + x1, job.dilate ? 1 : 0, static_cast<std::size_t>(w - x1));
                    }
                    ops.op_row(job.dilate, acc + x0, src, x1 - x0);
                }
            }
        });
        const bool last = !until_stable && it + 1 >= job.iterations;
        if (last) break;
        // Next iteration reads this result: copy it back, counting changes.
        parallel_for(n_blocks, threads, [&](std::int64_t b) {
            const std::int64_t r1 = std::min(n_rows, (b + 1) * kRowsPerBlock);
            std::int64_t c = 0;
            for (std::int64_t rr = b * kRowsPerBlock; rr < r1; ++rr) {
                std::uint8_t* dst = interior(rr / h, rr % h);
                const std::uint8_t* src = job.out + rr * w;
                if (std::memcmp(dst, src, static_cast<std::size_t>(w)) != 0) {
                    ++c;
                    std::memcpy(dst, src, static_cast<std::size_t>(w));
                }
            }
            changed[static_cast<std::size_t>(b)] = c;
        });
        std::int64_t total = 0;
        for (auto c : changed) total += c;
        if (total == 0) break;  // stable: out already holds the result
    }
}

}  // namespace medfuse
