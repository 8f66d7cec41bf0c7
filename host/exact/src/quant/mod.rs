//! Exact integer dot products of quantized activations with GGUF quantized weights.
//!
//! # Activations: [`Q8Block`] (power-of-two scaled int8, like OCP MXINT8)
//!
//! A row of Q15.16 activations is cut into blocks of 32. For each block the shift `k` is the
//! smallest non-negative integer with `round(max|X| / 2^k) <= 127`, and
//! `q_i = round(X_i / 2^k)` (ties away from zero), so the block's value is `q_i · 2^(k−16)`.
//! Because the scale is a power of two it is exact, and quantizing is a rounding shift. The
//! step is at most twice llama.cpp's `max/127` (which then rounds the scale itself to f16).
//! The block also stores `Σ q_i`, needed by the formats with an offset.
//!
//! # Weights: ggml block layouts (little-endian, `d`/`m` are IEEE binary16)
//!
//! | format | bytes | layout | element `j` (0..32) |
//! |---|---|---|---|
//! | `Q4_0` (ggml type 2) | 18 | `d`, `qs[16]` | `d·(n_j − 8)` |
//! | `Q4_1` (type 3) | 20 | `d`, `m`, `qs[16]` | `d·n_j + m` |
//! | `Q5_0` (type 6) | 22 | `d`, `qh: u32`, `qs[16]` | `d·((n_j | h_j<<4) − 16)` |
//! | `Q8_0` (type 8) | 34 | `d`, `qs: [i8; 32]` | `d·qs[j]` |
//!
//! where the nibble `n_j` is `qs[j] & 15` for `j < 16` (low nibbles are elements 0..15) and
//! `qs[j−16] >> 4` for `j >= 16` (high nibbles are elements 16..31), and `h_j` is bit `j` of
//! `qh`.
//!
//! Two super-block formats of 256 elements (eight activation blocks each):
//!
//! * `Q4_K` (type 12, 144 bytes): `d`, `dmin`, `scales[12]`, `qs[128]`. Sub-block `s` (0..8,
//!   32 elements) has a 6-bit scale `sc_s` and a 6-bit min `m_s` packed in `scales` (ggml's
//!   `get_scale_min_k4`: for `s < 4`, `sc = scales[s] & 63`, `m = scales[s+4] & 63`; otherwise
//!   `sc = (scales[s+4] & 15) | (scales[s−4] >> 6) << 4`, `m = (scales[s+4] >> 4) |
//!   (scales[s] >> 6) << 4`). Its element `l` is the nibble `(qs[32·(s/2) + l] >> 4·(s%2)) & 15`
//!   and its value `d·sc_s·n − dmin·m_s`.
//! * `Q6_K` (type 14, 210 bytes): `ql[128]`, `qh[64]`, `scales: [i8; 16]`, `d`. Element
//!   `e = 128h + 32g + l` (`h` in 0..2, `g` in 0..4, `l` in 0..32) has the 6-bit code
//!   `c = ((ql[64h + 32·(g%2) + l] >> 4·(g/2)) & 15) | ((qh[32h + l] >> 2g) & 3) << 4` and the
//!   value `d·scales[8h + 2g + l/16]·(c − 32)`.
//!
//! # Exactness and canonical reduction order
//!
//! An f16 scale is exactly `mant·2^e` with `|mant| < 2^11` and `e ∈ [−24, 5]`
//! ([`crate::fixed::f16_parts`]). For one block the integer sum `isum = Σ n_j·q_j` is exact in
//! `i32` whatever the order or SIMD width it is computed with; the block's contribution
//! `isum·mant·2^(e + k − 16)` is then an integer multiple of `2^−40` (`e + k − 16 >= −40`), and
//! it is added *exactly* into an `i128` accumulator in Q87.40 ([`crate::fixed::DOT_FRAC_BITS`];
//! every term is below `2^85` in magnitude, so no row shorter than `2^40` blocks can overflow).
//! The dot product of the quantized operands is therefore computed with no rounding at all, and
//! because integer addition is associative the result is the same bits for any chunking of the
//! row, any thread split of the rows, and the scalar or the AVX2 kernel. The only rounding is
//! the final conversion [`dot_to_act`] (ties away from zero, saturating to `i32`).
//!
//! Error bound: zero with respect to the quantized operands (tested by comparing with an
//! `i128` reference built from the dequantized values); against the `f64` dot product of the
//! dequantized weights and the *unquantized* activations the difference is the activation
//! quantization error, at most `Σ_j |w_j| · 2^(k_b − 17)` (half a step per element), which the
//! tests check.

mod avx2;
mod dequant;
mod scalar;

pub use dequant::DEQUANT_FRAC_BITS;

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::{check_len, ExactError};
use crate::fixed::{
    f16_parts, round_shift_i128, round_shift_i64, saturate_i32, ACT_FRAC_BITS, DOT_FRAC_BITS,
};

/// Elements per activation block (and per weight block of the 32-element formats).
pub const QK: usize = 32;

/// Elements per super-block of the `_K` formats.
pub const QK_K: usize = 256;

/// The environment variable that forces the scalar kernels when set to anything but `0` or the
/// empty string (read once per process).
pub const SCALAR_ENV: &str = "ENGRAM_EXACT_SCALAR";

/// One block of 32 quantized activations: `value_i = qs[i] · 2^(shift − 16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Q8Block {
    /// The 32 quantized values, each in `[−127, 127]`.
    pub qs: [i8; QK],
    /// `Σ qs[i]` (used by formats whose elements carry an offset).
    pub sum: i16,
    /// The power-of-two scale exponent `k` in `0..=25`, relative to the Q15.16 raw units.
    pub shift: u8,
}

impl Default for Q8Block {
    fn default() -> Self {
        Self {
            qs: [0; QK],
            sum: 0,
            shift: 0,
        }
    }
}

/// Quantizes a row of Q15.16 activations into `out` (`x.len() == 32 · out.len()`).
///
/// Never allocates; the caller keeps one buffer per row width.
pub fn quantize_act(x: &[i32], out: &mut [Q8Block]) -> Result<(), ExactError> {
    if !x.len().is_multiple_of(QK) {
        return Err(ExactError::NotBlockAligned {
            what: "activation length",
            len: x.len(),
            block: QK,
        });
    }
    check_len("quantized activation blocks", x.len() / QK, out.len())?;
    for (chunk, block) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = chunk.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as u64;
        let mut k = (64 - amax.leading_zeros()).saturating_sub(7);
        if k > 0 && (amax + (1 << (k - 1))) >> k > 127 {
            k += 1;
        }
        let mut sum = 0i32;
        for (q, &v) in block.qs.iter_mut().zip(chunk) {
            // |v| <= 2^31, so the i64 rounding shift is exact (the crate's one rounding rule).
            *q = round_shift_i64(v as i64, k) as i8;
            sum += *q as i32;
        }
        block.sum = sum as i16;
        block.shift = k as u8;
    }
    Ok(())
}

/// The weight formats with an exact dot product (named as in ggml).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// ggml `Q4_0`: f16 `d`, 16 bytes of nibbles, `d·(n − 8)`.
    Q4_0,
    /// ggml `Q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles, `d·n + m`.
    Q4_1,
    /// ggml `Q5_0`: f16 `d`, 32 high bits, 16 bytes of nibbles, `d·(n5 − 16)`.
    Q5_0,
    /// ggml `Q8_0`: f16 `d`, 32 signed bytes, `d·q`.
    Q8_0,
    /// ggml `Q4_K`: 256-element super-blocks of eight 4-bit sub-blocks with 6-bit scales/mins.
    Q4_K,
    /// ggml `Q6_K`: 256-element super-blocks of 6-bit codes with sixteen 8-bit scales.
    Q6_K,
}

impl WeightFormat {
    /// Every supported format.
    pub const ALL: [WeightFormat; 6] = [
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q8_0,
        Self::Q4_K,
        Self::Q6_K,
    ];

    /// Elements per weight block (32, or 256 for the `_K` formats).
    pub const fn block_len(self) -> usize {
        match self {
            Self::Q4_K | Self::Q6_K => QK_K,
            _ => QK,
        }
    }

    /// Bytes per weight block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q6_K => 210,
        }
    }

    /// Activation blocks per weight block.
    const fn acts_per_block(self) -> usize {
        self.block_len() / QK
    }

    /// The format for a ggml tensor type id (`GGML_TYPE_Q4_0 = 2`, `Q4_1 = 3`, `Q5_0 = 6`,
    /// `Q8_0 = 8`, `Q4_K = 12`, `Q6_K = 14`), or `None` for types without an exact kernel.
    pub const fn from_ggml_type(id: u32) -> Option<Self> {
        match id {
            2 => Some(Self::Q4_0),
            3 => Some(Self::Q4_1),
            6 => Some(Self::Q5_0),
            8 => Some(Self::Q8_0),
            12 => Some(Self::Q4_K),
            14 => Some(Self::Q6_K),
            _ => None,
        }
    }

    /// Byte offsets of the f16 scales inside a block.
    const fn scale_offsets(self) -> &'static [usize] {
        match self {
            Self::Q4_1 | Self::Q4_K => &[0, 2],
            Self::Q6_K => &[208],
            _ => &[0],
        }
    }
}

/// Which kernel computes the per-block integer sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// AVX2 when the CPU has it and [`SCALAR_ENV`] is not set; otherwise scalar.
    #[default]
    Auto,
    /// Always the portable scalar reference.
    Scalar,
}

impl Kernel {
    /// Whether this choice runs the AVX2 kernel on this machine and process.
    pub fn uses_avx2(self) -> bool {
        self == Kernel::Auto && avx2::available() && !scalar_forced()
    }

    /// A short name of the kernel that will run (`"avx2"`, `"avx2+vnni"` where the tiles use
    /// the AVX-512 VNNI byte dot product, or `"scalar"`), for logs and benches.
    pub fn name(self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if self.uses_avx2() && avx2::vnni_available() {
            return "avx2+vnni";
        }
        if self.uses_avx2() {
            "avx2"
        } else {
            "scalar"
        }
    }
}

fn scalar_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os(SCALAR_ENV).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Converts an exact Q87.40 dot product to a Q15.16 activation (ties away from zero, saturating).
#[inline]
pub fn dot_to_act(acc: i128) -> i32 {
    saturate_i32(round_shift_i128(acc, DOT_FRAC_BITS - ACT_FRAC_BITS))
}

/// `dot_to_act(v · 2^base)` for a 64-bit window sum `v` (the tile kernels' per-row result),
/// in `i64` where it cannot overflow — the same value as the `i128` expression, cheaper.
/// `base` must be at most 64.
#[inline]
pub fn window_to_act(v: i64, base: u32) -> i32 {
    debug_assert!(base <= 64, "window base {base} above 64");
    const R: u32 = DOT_FRAC_BITS - ACT_FRAC_BITS;
    if v.unsigned_abs() < 1 << 62 {
        if base <= R {
            // |v| < 2^62, so adding half of 2^(R − base) <= 2^23 cannot overflow.
            return saturate_i32(round_shift_i64(v, R - base) as i128);
        }
        if base - R < 32 {
            // |v · 2^(base − R)| < 2^93: exact in i128, and the shift is an exact product.
            return saturate_i32((v as i128) << (base - R));
        }
    }
    dot_to_act((v as i128) << base)
}

/// A validated, borrowed, row-major matrix of quantized weights (`rows × cols`, each row a
/// sequence of `cols / 32` blocks), as stored in a GGUF tensor.
#[derive(Debug, Clone)]
pub struct QuantMatrix<'a> {
    format: WeightFormat,
    data: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
    /// Per row, the smallest and largest exponent of its non-zero f16 block scales (32-element
    /// formats only): lets the AVX2 kernel accumulate a row in one 64-bit window.
    row_exp: Vec<(i8, i8)>,
    /// Scales decoded at load time for eight-row tiles ([`QuantMatrix::with_packed_scales`]).
    packed: Option<Packed>,
}

/// Block scales decoded once into the integers the tile kernels need.
///
/// For full tile `t` (rows `8t..8t+8`) and block `b`, `sc[(t·nb + b)·per ..]` holds eight `i16`
/// mantissas of `d`, eight shifts `e − emin_row` (0 for a zero scale), and for `Q4_1` the same
/// for `m` (`per` = 16 or 32). The kernels then multiply the eight rows' block sums by their
/// mantissas in one instruction and add `v · 2^(shift + k_b − k_min)` into one `i64` lane per
/// row; the row's total is that lane times `2^(emin_row + k_min + 24)` in Q87.40 — the same
/// exact integer as the per-row kernels.
///
/// For `Q4_0` and `Q4_1`, `qs` also holds the weights' nibbles interleaved by tile: for full tile
/// `t` and block `b`, 128 bytes at `(t·nb + b)·128`, four groups `g` of 32 bytes, each the bytes
/// `4g..4g+4` of the block's 16 nibble bytes for rows `8t..8t+8` in turn. One 32-byte load
/// then holds four bytes of each of the eight rows, so a byte dot product against four
/// broadcast activation bytes leaves each row's partial sum in its own lane, with no horizontal
/// reduction (the integers are the same).
#[derive(Debug, Clone)]
struct Packed {
    sc: Vec<i16>,
    qs: Vec<u8>,
    per: usize,
    /// Per full tile, the largest exponent spread `emax − emin` of its rows.
    spread: Vec<u8>,
}

impl<'a> QuantMatrix<'a> {
    /// Wraps `data` after checking its size and that every block scale is finite (done once, at
    /// load time, so the per-token calls need no checks beyond slice lengths).
    pub fn new(
        format: WeightFormat,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, ExactError> {
        let bl = format.block_len();
        if cols == 0 || !cols.is_multiple_of(bl) {
            return Err(ExactError::NotBlockAligned {
                what: "weight columns",
                len: cols,
                block: bl,
            });
        }
        let row_bytes = cols / bl * format.block_bytes();
        let total = rows
            .checked_mul(row_bytes)
            .ok_or(ExactError::UnsupportedDimension {
                what: "weight rows",
                len: rows,
                supported: "rows · row bytes must fit in memory",
            })?;
        check_len("weight data (bytes)", total, data.len())?;
        let per_row = cols / bl;
        let mut row_exp = vec![(i8::MAX, i8::MIN); if bl == QK { rows } else { 0 }];
        for (i, block) in data.chunks_exact(format.block_bytes()).enumerate() {
            for &off in format.scale_offsets() {
                let Some((m, e)) = f16_parts(u16::from_le_bytes([block[off], block[off + 1]]))
                else {
                    return Err(ExactError::NonFiniteScale {
                        row: i / per_row,
                        block: i % per_row,
                    });
                };
                if let Some(r) = row_exp.get_mut(i / per_row).filter(|_| m != 0) {
                    *r = (r.0.min(e as i8), r.1.max(e as i8));
                }
            }
        }
        for r in row_exp.iter_mut().filter(|r| r.0 > r.1) {
            *r = (0, 0); // a row of zero scales
        }
        Ok(Self {
            format,
            data,
            rows,
            cols,
            row_bytes,
            row_exp,
            packed: None,
        })
    }

    /// Decodes the block scales once (load time) for the eight-row tile kernels, which then
    /// serve [`QuantMatrix::matvec_rows`] with AVX2 (and AVX-512 VNNI where present). The
    /// results are the same bits; only `Q4_0`, `Q4_1`, `Q5_0` and `Q8_0` have tiles (other
    /// formats are returned unchanged). Costs 4 bytes per block scale, and for `Q4_0`/`Q4_1`
    /// a copy of the nibbles interleaved by tile (16 bytes per block).
    pub fn with_packed_scales(mut self) -> Self {
        if self.format.block_len() != QK {
            return self;
        }
        let nb = self.cols / QK;
        let per = if self.format == WeightFormat::Q4_1 {
            32
        } else {
            16
        };
        let tiles = self.rows / 8;
        let mut sc = vec![0i16; tiles * nb * per];
        let mut spread = vec![0u8; tiles];
        let offs = self.format.scale_offsets();
        for (t, tile_spread) in spread.iter_mut().enumerate() {
            for i in 0..8 {
                let r = 8 * t + i;
                let (emin, emax) = self.row_exp[r];
                *tile_spread = (*tile_spread).max((emax - emin) as u8);
                let row = self.row_data(r);
                for b in 0..nb {
                    let block = &row[b * self.format.block_bytes()..];
                    for (j, &off) in offs.iter().enumerate() {
                        let bits = u16::from_le_bytes([block[off], block[off + 1]]);
                        let (m, e) = crate::fixed::f16_parts_unchecked(bits);
                        let at = (t * nb + b) * per + 16 * j;
                        sc[at + i] = m as i16;
                        sc[at + 8 + i] = if m == 0 { 0 } else { (e - emin as i32) as i16 };
                    }
                }
            }
        }
        let qs = if matches!(self.format, WeightFormat::Q4_0 | WeightFormat::Q4_1) {
            self.interleaved_nibbles()
        } else {
            Vec::new()
        };
        self.packed = Some(Packed {
            sc,
            qs,
            per,
            spread,
        });
        self
    }

    /// The nibble bytes of every full eight-row tile in the layout of [`Packed::qs`].
    fn interleaved_nibbles(&self) -> Vec<u8> {
        let (nb, bb) = (self.cols / QK, self.format.block_bytes());
        let tiles = self.rows / 8;
        let mut qs = vec![0u8; tiles * nb * 128];
        for (i, chunk) in qs.chunks_exact_mut(128).enumerate() {
            let (t, b) = (i / nb, i % nb);
            for (g, group) in chunk.chunks_exact_mut(32).enumerate() {
                for (r, four) in group.chunks_exact_mut(4).enumerate() {
                    let nibbles = b * bb + bb - 16 + 4 * g;
                    four.copy_from_slice(&self.row_data(8 * t + r)[nibbles..nibbles + 4]);
                }
            }
        }
        qs
    }

    /// The weight format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row_data(&self, row: usize) -> &'a [u8] {
        &self.data[row * self.row_bytes..(row + 1) * self.row_bytes]
    }

    fn check_x(&self, x: &[Q8Block]) -> Result<(), ExactError> {
        check_len("quantized activation blocks", self.cols / QK, x.len())
    }

    /// The exact Q87.40 dot product of row `row` with the quantized activations `x`.
    pub fn row_dot(&self, row: usize, x: &[Q8Block], kernel: Kernel) -> Result<i128, ExactError> {
        self.row_dot_blocks(row, 0..self.cols / self.format.block_len(), x, kernel)
    }

    /// The exact Q87.40 dot product of row `row` restricted to the weight blocks `blocks`
    /// (indices of the format's blocks: 32 elements, or 256 for `_K`); partial sums over any
    /// partition of the blocks add up to [`QuantMatrix::row_dot`] exactly.
    pub fn row_dot_blocks(
        &self,
        row: usize,
        blocks: Range<usize>,
        x: &[Q8Block],
        kernel: Kernel,
    ) -> Result<i128, ExactError> {
        self.check_x(x)?;
        if row >= self.rows {
            return Err(ExactError::LengthMismatch {
                what: "row index (must be < rows)",
                expected: self.rows,
                actual: row,
            });
        }
        let nb = self.cols / self.format.block_len();
        if blocks.start > blocks.end || blocks.end > nb {
            return Err(ExactError::LengthMismatch {
                what: "block range end",
                expected: nb,
                actual: blocks.end,
            });
        }
        let (bb, apb) = (self.format.block_bytes(), self.format.acts_per_block());
        let w = &self.row_data(row)[blocks.start * bb..blocks.end * bb];
        let x = &x[blocks.start * apb..blocks.end * apb];
        Ok(dot_blocks(
            self.format,
            w,
            x,
            kernel,
            self.row_exp.get(row).copied(),
            shift_range(x),
        ))
    }

    /// Dequantizes row `row` exactly into `out` (`out.len() == cols`), in Q39.24
    /// ([`DEQUANT_FRAC_BITS`]).
    pub fn dequantize_row(&self, row: usize, out: &mut [i64]) -> Result<(), ExactError> {
        if row >= self.rows {
            return Err(ExactError::LengthMismatch {
                what: "row index (must be < rows)",
                expected: self.rows,
                actual: row,
            });
        }
        check_len("dequantized row", self.cols, out.len())?;
        let bl = self.format.block_len();
        for (w, o) in self
            .row_data(row)
            .chunks_exact(self.format.block_bytes())
            .zip(out.chunks_exact_mut(bl))
        {
            dequant::block(self.format, w, o);
        }
        Ok(())
    }

    /// Dequantizes row `row` into Q15.16 activations (rounded, ties away from zero, saturating):
    /// the embedding lookup of exact mode. `scratch` holds one weight block
    /// (`scratch.len() >= format.block_len()`), so nothing is allocated.
    pub fn dequantize_row_act(
        &self,
        row: usize,
        scratch: &mut [i64],
        out: &mut [i32],
    ) -> Result<(), ExactError> {
        if row >= self.rows {
            return Err(ExactError::LengthMismatch {
                what: "row index (must be < rows)",
                expected: self.rows,
                actual: row,
            });
        }
        check_len("dequantized row", self.cols, out.len())?;
        let bl = self.format.block_len();
        if scratch.len() < bl {
            return Err(ExactError::LengthMismatch {
                what: "dequantization scratch",
                expected: bl,
                actual: scratch.len(),
            });
        }
        let scratch = &mut scratch[..bl];
        for (w, o) in self
            .row_data(row)
            .chunks_exact(self.format.block_bytes())
            .zip(out.chunks_exact_mut(bl))
        {
            dequant::block(self.format, w, scratch);
            for (a, &v) in o.iter_mut().zip(scratch.iter()) {
                *a = dequant::to_act(v);
            }
        }
        Ok(())
    }

    /// `out[i] = dot_to_act(row_dot(i, x))` for every row (`out.len() == rows`).
    pub fn matvec(&self, x: &[Q8Block], out: &mut [i32], kernel: Kernel) -> Result<(), ExactError> {
        self.matvec_rows(0..self.rows, x, out, kernel)
    }

    /// [`QuantMatrix::matvec`] for the rows `rows` only, into `out` (`out.len() == rows.len()`):
    /// the unit of work to hand to a thread.
    pub fn matvec_rows(
        &self,
        rows: Range<usize>,
        x: &[Q8Block],
        out: &mut [i32],
        kernel: Kernel,
    ) -> Result<(), ExactError> {
        self.check_x(x)?;
        if rows.start > rows.end || rows.end > self.rows {
            return Err(ExactError::LengthMismatch {
                what: "row range end",
                expected: self.rows,
                actual: rows.end,
            });
        }
        check_len("matvec output", rows.len(), out.len())?;
        let shifts = shift_range(x);
        #[cfg(target_arch = "x86_64")]
        if kernel.uses_avx2() && self.packed.is_some() {
            self.matvec_tiled(rows, x, out, shifts);
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if kernel.uses_avx2() && self.format.block_len() == QK {
            let rows = rows.map(|r| {
                let window = window_base(self.row_exp.get(r).copied(), shifts, x.len());
                (self.row_data(r), window)
            });
            // SAFETY: `uses_avx2` checked at run time that the CPU supports AVX2.
            unsafe { avx2::matvec32(self.format, rows, x, out) };
            return Ok(());
        }
        for (o, r) in out.iter_mut().zip(rows) {
            let exp = self.row_exp.get(r).copied();
            *o = dot_to_act(dot_blocks(
                self.format,
                self.row_data(r),
                x,
                kernel,
                exp,
                shifts,
            ));
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
impl QuantMatrix<'_> {
    /// [`QuantMatrix::matvec_rows`] through the eight-row tiles (AVX2 checked by the caller):
    /// full tiles whose every term fits the `i64` window go through the tile kernel, the other
    /// rows through the per-row kernel.
    fn matvec_tiled(&self, rows: Range<usize>, x: &[Q8Block], out: &mut [i32], shifts: (u8, u8)) {
        static VNNI: OnceLock<bool> = OnceLock::new();
        let vnni = *VNNI.get_or_init(avx2::vnni_available);
        self.matvec_tiled_with(rows, x, out, shifts, vnni);
    }

    /// [`QuantMatrix::matvec_tiled`] with the byte dot product chosen by the caller: `vnni`
    /// only where [`avx2::vnni_available`] (the tests run both on such a machine).
    fn matvec_tiled_with(
        &self,
        rows: Range<usize>,
        x: &[Q8Block],
        out: &mut [i32],
        shifts: (u8, u8),
        vnni: bool,
    ) {
        let p = self.packed.as_ref().expect("checked by the caller");
        let nb = x.len();
        let kspread = (shifts.1 - shifts.0) as u32;
        // Terms are below 2^30 in magnitude, shifted by at most spread + kspread, and each
        // i64 lane receives at most 2·nb of them.
        let bits = usize::BITS - (2 * nb).leading_zeros();
        let one_row = |r: usize| {
            let w = self.row_data(r);
            let window = window_base(self.row_exp.get(r).copied(), shifts, nb);
            // SAFETY: AVX2 was checked by the caller.
            dot_to_act(unsafe { avx2::dot(self.format, w, x, window) })
        };
        let mut r = rows.start;
        while r < rows.end {
            let t = r / 8;
            let full = r.is_multiple_of(8) && r + 8 <= rows.end && t < p.spread.len();
            if !full || p.spread[t] as u32 + kspread + bits > 32 {
                out[r - rows.start] = one_row(r);
                r += 1;
                continue;
            }
            let sc = &p.sc[t * nb * p.per..(t + 1) * nb * p.per];
            let acc = if p.qs.is_empty() {
                let w: [&[u8]; 8] = std::array::from_fn(|i| self.row_data(r + i));
                // SAFETY: AVX2 (and for the VNNI kernel AVX-512 F/VL/VNNI) detected at run time.
                unsafe {
                    if vnni {
                        avx2::tile8_vnni(self.format, &w, sc, x, shifts.0)
                    } else {
                        avx2::tile8_avx2(self.format, &w, sc, x, shifts.0)
                    }
                }
            } else {
                let qs = &p.qs[t * nb * 128..(t + 1) * nb * 128];
                // SAFETY: as above.
                unsafe {
                    if vnni {
                        avx2::tile8_nibbles_vnni(self.format, qs, sc, x, shifts.0)
                    } else {
                        avx2::tile8_nibbles_avx2(self.format, qs, sc, x, shifts.0)
                    }
                }
            };
            for (i, &a) in acc.iter().enumerate() {
                let base = self.row_exp[r + i].0 as i32 + shifts.0 as i32 + 24;
                out[r - rows.start + i] = window_to_act(a, base as u32);
            }
            r += 8;
        }
    }
}

/// The smallest and largest activation shift of `x` (`(0, 0)` when empty).
fn shift_range(x: &[Q8Block]) -> (u8, u8) {
    let lo = x.iter().map(|b| b.shift).min().unwrap_or(0);
    let hi = x.iter().map(|b| b.shift).max().unwrap_or(0);
    (lo, hi)
}

/// The base shift of the 64-bit window the AVX2 kernel may accumulate a row segment of
/// `blocks` blocks in, or `None` when the terms may not fit: terms are below `2^(30 + spread)`
/// and each of the 8 `i64` lanes takes at most `blocks / 2` of them, so the window holds if
/// `spread + bits(blocks) <= 32`.
fn window_base(exp: Option<(i8, i8)>, shifts: (u8, u8), blocks: usize) -> Option<u32> {
    exp.and_then(|(emin, emax)| {
        let spread = (emax - emin) as u32 + (shifts.1 - shifts.0) as u32;
        let bits = usize::BITS - blocks.leading_zeros();
        (spread + bits <= 32).then(|| (emin as i32 + shifts.0 as i32 + 24) as u32)
    })
}

/// Dispatches one row segment to the chosen kernel (lengths already checked). `exp` and
/// `shifts` are the ranges of the weight-scale exponents and activation shifts of the segment
/// (a superset is fine); when every term then fits one 64-bit window the AVX2 kernel
/// accumulates in it directly (the result is the same exact integer either way).
fn dot_blocks(
    format: WeightFormat,
    w: &[u8],
    x: &[Q8Block],
    kernel: Kernel,
    exp: Option<(i8, i8)>,
    shifts: (u8, u8),
) -> i128 {
    if kernel.uses_avx2() {
        let window = window_base(exp, shifts, x.len());
        // SAFETY: `uses_avx2` checked at run time that the CPU supports AVX2.
        #[cfg(target_arch = "x86_64")]
        return unsafe { avx2::dot(format, w, x, window) };
    }
    scalar::dot(format, w, x)
}

#[cfg(test)]
mod tests;
