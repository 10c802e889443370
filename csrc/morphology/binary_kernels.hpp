// Binary morphology row loops, compiled once per ISA (included inside the
// namespace medfuse::<isa> by binary.cpp / binary_avx2.cpp /
// binary_avx512.cpp; no headers here: the .cpp includes <algorithm>,
// <cstdint> and <cstring> first). Byte-wise AND/OR loops that the compiler
// vectorises at the TU's vector width; results are the same bits on every
// path (AND/OR of 0/1 bytes).

namespace {

void and_row(std::uint8_t* __restrict acc, const std::uint8_t* __restrict src, std::int64_t n) {
    for (std::int64_t x = 0; x < n; ++x) acc[x] = static_cast<std::uint8_t>(acc[x] & src[x]);
}

void or_row(std::uint8_t* __restrict acc, const std::uint8_t* __restrict src, std::int64_t n) {
    for (std::int64_t x = 0; x < n; ++x) acc[x] = static_cast<std::uint8_t>(acc[x] | src[x]);
}

// ---- Box structures (every offset of a centred box: 3x3, 3x3x3, ...) ----
//
// Erosion / dilation by a box is separable: the AND (OR) over a box is the
// AND over z of the AND over y of the AND over x, each over the extended
// image (outside reads `border`). Three passes of 2r + 1 rows each replace
// the (2r + 1)^3 shifted rows, and no padded copy is needed. A border value
// that is the operation's neutral element (1 for AND, 0 for OR) drops the
// terms outside the image; the other value (the annihilator) decides every
// output whose window reaches outside. Only for one iteration.

template <bool Dilate>
inline std::uint8_t box_op(std::uint8_t a, std::uint8_t b) {
    return Dilate ? static_cast<std::uint8_t>(a | b) : static_cast<std::uint8_t>(a & b);
}

// dst[0..n) = op over the lines at i - r .. i + r of `lines` (line i at
// base + i * stride, n bytes each, valid for 0 <= i < count), extended.
template <bool Dilate>
void box_lines(const std::uint8_t* base, std::int64_t stride, std::int64_t count, std::int64_t i, std::int64_t r,
               std::int64_t n, bool kills, std::uint8_t* __restrict dst) {
    const std::int64_t a = i - r, b = i + r;
    if (kills && (a < 0 || b >= count)) {
        std::memset(dst, Dilate ? 1 : 0, static_cast<std::size_t>(n));
        return;
    }
    const std::int64_t q0 = std::max<std::int64_t>(0, a), q1 = std::min(count - 1, b);
    if (q1 - q0 == 2) {  // three lines (3 wide, inside): one fused pass
        const std::uint8_t* __restrict l0 = base + q0 * stride;
        const std::uint8_t* __restrict l1 = l0 + stride;
        const std::uint8_t* __restrict l2 = l1 + stride;
        for (std::int64_t x = 0; x < n; ++x) dst[x] = box_op<Dilate>(box_op<Dilate>(l0[x], l1[x]), l2[x]);
        return;
    }
    std::memcpy(dst, base + q0 * stride, static_cast<std::size_t>(n));
    for (std::int64_t q = q0 + 1; q <= q1; ++q) {
        const std::uint8_t* __restrict src = base + q * stride;
        for (std::int64_t x = 0; x < n; ++x) dst[x] = box_op<Dilate>(dst[x], src[x]);
    }
}

// out[i] = op over in[i - r .. i + r] for i in [0, n) (the caller makes
// in[-r .. n + r) readable): a whole band of rows as one line.
template <bool Dilate>
void box_flat(const std::uint8_t* __restrict in, std::uint8_t* __restrict out, std::int64_t n, std::int64_t r) {
    if (r == 1) {
        for (std::int64_t x = 0; x < n; ++x) out[x] = box_op<Dilate>(box_op<Dilate>(in[x - 1], in[x]), in[x + 1]);
        return;
    }
    for (std::int64_t x = 0; x < n; ++x) out[x] = in[x - r];
    for (std::int64_t dx = -r + 1; dx <= r; ++dx)
        for (std::int64_t x = 0; x < n; ++x) out[x] = box_op<Dilate>(out[x], in[x + dx]);
}

}  // namespace

void box_flat_u8(bool dilate, const std::uint8_t* in, std::uint8_t* out, std::int64_t n, std::int64_t r) {
    if (dilate)
        box_flat<true>(in, out, n, r);
    else
        box_flat<false>(in, out, n, r);
}

void op_row_u8(bool dilate, std::uint8_t* acc, const std::uint8_t* src, std::int64_t n) {
    if (dilate)
        or_row(acc, src, n);
    else
        and_row(acc, src, n);
}

void box_lines_u8(bool dilate, const std::uint8_t* base, std::int64_t stride, std::int64_t count, std::int64_t i,
                  std::int64_t r, std::int64_t n, bool kills, std::uint8_t* dst) {
    if (dilate)
        box_lines<true>(base, stride, count, i, r, n, kills, dst);
    else
        box_lines<false>(base, stride, count, i, r, n, kills, dst);
}
