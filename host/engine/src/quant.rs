//! GGML quantization formats: block layouts, dequantization, and the activation formats
//! (`Q8_0`, `Q8_1`, `Q8_K`) that activations are quantized to before a quantized dot product,
//! as llama.cpp does.
//!
//! The scalar functions here are the reference every SIMD kernel is tested against.

// Index loops mirror the GGML reference code block for block, which keeps them auditable.
#![allow(clippy::needless_range_loop)]

use half::f16;

/// The tensor element types this engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit, blocks of 32, scale only.
    Q4_0,
    /// 4-bit, blocks of 32, scale and minimum.
    Q4_1,
    /// 5-bit, blocks of 32, scale only.
    Q5_0,
    /// 8-bit, blocks of 32, scale only.
    Q8_0,
    /// 4-bit k-quant, super-blocks of 256 with 6-bit sub-block scales and minimums.
    Q4K,
    /// 6-bit k-quant, super-blocks of 256 with 8-bit sub-block scales.
    Q6K,
}

/// Elements per block for the 32-wide formats.
pub const QK: usize = 32;
/// Elements per super-block for the k-quants.
pub const QK_K: usize = 256;

impl GgmlType {
    /// Maps a GGML type id to a supported type.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            _ => return None,
        })
    }
    /// The GGML type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q6K => 14,
        }
    }
    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 => QK,
            GgmlType::Q4K | GgmlType::Q6K => QK_K,
        }
    }
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q6K => 210,
        }
    }
    /// Bytes of one row of `n` elements.
    pub fn row_bytes(self, n: usize) -> usize {
        n / self.block_size() * self.block_bytes()
    }
    /// The format activations are converted to before a dot product with this weight type.
    pub fn act_type(self) -> ActType {
        match self {
            GgmlType::F32 | GgmlType::F16 => ActType::F32,
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => ActType::Q8_0,
            GgmlType::Q4_1 => ActType::Q8_1,
            GgmlType::Q4K | GgmlType::Q6K => ActType::Q8K,
        }
    }
}

/// Activation formats used as the right-hand side of quantized dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActType {
    /// Plain f32.
    F32,
    /// Blocks of 32 int8 with an f32 scale ([`BlockQ8_0A`]).
    Q8_0,
    /// Blocks of 32 int8 with an f32 scale and the scaled sum ([`BlockQ8_1A`]).
    Q8_1,
    /// Super-blocks of 256 int8 with an f32 scale and 16-element sums ([`BlockQ8K`]).
    Q8K,
}

impl ActType {
    /// Bytes of one row of `n` activations in this format.
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            ActType::F32 => n * 4,
            ActType::Q8_0 => n / QK * std::mem::size_of::<BlockQ8_0A>(),
            ActType::Q8_1 => n / QK * std::mem::size_of::<BlockQ8_1A>(),
            ActType::Q8K => n / QK_K * std::mem::size_of::<BlockQ8K>(),
        }
    }
}

/// GGML `block_q4_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_0 {
    /// Scale (f16 bits).
    pub d: u16,
    /// 32 nibbles: element j in the low nibble of byte j, element j+16 in its high nibble.
    pub qs: [u8; 16],
}
/// GGML `block_q4_1`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_1 {
    /// Scale (f16 bits).
    pub d: u16,
    /// Minimum (f16 bits).
    pub m: u16,
    /// 32 nibbles as in [`BlockQ4_0`].
    pub qs: [u8; 16],
}
/// GGML `block_q5_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    /// Scale (f16 bits).
    pub d: u16,
    /// The fifth bit of element j is bit j.
    pub qh: [u8; 4],
    /// Low nibbles as in [`BlockQ4_0`].
    pub qs: [u8; 16],
}
/// GGML `block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    /// Scale (f16 bits).
    pub d: u16,
    /// Quants.
    pub qs: [i8; 32],
}
/// GGML `block_q4_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    /// Super-block scale for the scales (f16 bits).
    pub d: u16,
    /// Super-block scale for the minimums (f16 bits).
    pub dmin: u16,
    /// Eight 6-bit scales and eight 6-bit minimums, packed.
    pub scales: [u8; 12],
    /// 256 nibbles: per 64 elements, 32 bytes whose low nibbles are the first 32.
    pub qs: [u8; 128],
}
/// GGML `block_q6_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    /// Low 4 bits.
    pub ql: [u8; 128],
    /// High 2 bits.
    pub qh: [u8; 64],
    /// Sixteen 8-bit sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale (f16 bits).
    pub d: u16,
}
/// Activation block for Q4_0/Q5_0/Q8_0 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0A {
    /// Scale.
    pub d: f32,
    /// Quants.
    pub qs: [i8; 32],
}
/// Activation block for Q4_1 weights.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1A {
    /// Scale.
    pub d: f32,
    /// `d * Σ qs`.
    pub s: f32,
    /// Quants.
    pub qs: [i8; 32],
}
/// Activation super-block for k-quant weights.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quants.
    pub qs: [i8; 256],
    /// Sums of each 16 consecutive quants.
    pub bsums: [i16; 16],
}

/// Converts f16 bits to f32.
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Reinterprets a byte slice as a slice of blocks. Returns `None` when the length is not a
/// whole number of blocks or the bytes are misaligned for `T`.
pub fn cast_blocks<T: Copy>(bytes: &[u8]) -> Option<&[T]> {
    let sz = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(sz) || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return None;
    }
    // SAFETY: length and alignment checked; every `T` used here is plain old data (integer
    // arrays), valid for any bit pattern.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / sz) })
}

/// Mutable version of [`cast_blocks`].
pub fn cast_blocks_mut<T: Copy>(bytes: &mut [u8]) -> Option<&mut [T]> {
    let sz = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(sz) || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return None;
    }
    // SAFETY: as in `cast_blocks`.
    Some(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut T, bytes.len() / sz) })
}

/// Decodes the 6-bit scale and minimum `j` (0..8) of a Q4_K block.
#[inline(always)]
pub fn q4k_scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one row of `out.len()` elements of type `ty` from `src`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], out: &mut [f32]) {
    let n = out.len();
    assert_eq!(src.len(), ty.row_bytes(n), "row byte length");
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().unwrap());
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::Q4_0 => {
            let bl: &[BlockQ4_0] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK)) {
                let d = f16_to_f32(b.d);
                for j in 0..16 {
                    o[j] = ((b.qs[j] & 0xF) as i32 - 8) as f32 * d;
                    o[j + 16] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            let bl: &[BlockQ4_1] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK)) {
                let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                for j in 0..16 {
                    o[j] = (b.qs[j] & 0xF) as f32 * d + m;
                    o[j + 16] = (b.qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            let bl: &[BlockQ5_0] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK)) {
                let d = f16_to_f32(b.d);
                let qh = u32::from_le_bytes(b.qh);
                for j in 0..16 {
                    let h0 = (((qh >> j) << 4) & 0x10) as u8;
                    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                    o[j] = (((b.qs[j] & 0xF) | h0) as i32 - 16) as f32 * d;
                    o[j + 16] = (((b.qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q8_0 => {
            let bl: &[BlockQ8_0] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK)) {
                let d = f16_to_f32(b.d);
                for j in 0..32 {
                    o[j] = b.qs[j] as f32 * d;
                }
            }
        }
        GgmlType::Q4K => {
            let bl: &[BlockQ4K] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK_K)) {
                let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
                for j in 0..4 {
                    let (s1, m1) = q4k_scale_min(2 * j, &b.scales);
                    let (s2, m2) = q4k_scale_min(2 * j + 1, &b.scales);
                    let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
                    let q = &b.qs[32 * j..32 * j + 32];
                    for l in 0..32 {
                        o[64 * j + l] = d1 * (q[l] & 0xF) as f32 - m1;
                        o[64 * j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
                    }
                }
            }
        }
        GgmlType::Q6K => {
            let bl: &[BlockQ6K] = cast_blocks(src).expect("aligned");
            for (b, o) in bl.iter().zip(out.chunks_exact_mut(QK_K)) {
                let d = f16_to_f32(b.d);
                for h in 0..2 {
                    let ql = &b.ql[64 * h..];
                    let qh = &b.qh[32 * h..];
                    let sc = &b.scales[8 * h..];
                    let y = &mut o[128 * h..];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * sc[is] as f32 * q1 as f32;
                        y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                        y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                        y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
                    }
                }
            }
        }
    }
}

/// `v` rounded half away from zero (as `f32::round`) and clamped to ±127, without the libm
/// call `round` compiles to on baseline x86_64: truncation by conversion, then the exact
/// fraction `v − trunc(v)` decides (|v| stays far below 2²³ here, where it is exact).
#[inline(always)]
fn round_i8(v: f32) -> i8 {
    let v = v.clamp(-127.0, 127.0); // NaN stays NaN and converts to 0, as before
    let t = v as i32;
    let f = v - t as f32;
    (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as i8
}

/// Quantizes one row of activations `x` into format `ty`, writing `ty.row_bytes(x.len())` bytes.
pub fn quantize_act_row(ty: ActType, x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), ty.row_bytes(x.len()));
    match ty {
        ActType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        ActType::Q8_0 => {
            let bl: &mut [BlockQ8_0A] = cast_blocks_mut(out).expect("aligned activation buffer");
            for (b, xs) in bl.iter_mut().zip(x.chunks_exact(QK)) {
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b.d = d;
                for (q, v) in b.qs.iter_mut().zip(xs) {
                    *q = round_i8(v * id);
                }
            }
        }
        ActType::Q8_1 => {
            let bl: &mut [BlockQ8_1A] = cast_blocks_mut(out).expect("aligned activation buffer");
            for (b, xs) in bl.iter_mut().zip(x.chunks_exact(QK)) {
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b.d = d;
                let mut sum = 0i32;
                for (q, v) in b.qs.iter_mut().zip(xs) {
                    *q = round_i8(v * id);
                    sum += *q as i32;
                }
                b.s = d * sum as f32;
            }
        }
        ActType::Q8K => {
            let bl: &mut [BlockQ8K] = cast_blocks_mut(out).expect("aligned activation buffer");
            for (b, xs) in bl.iter_mut().zip(x.chunks_exact(QK_K)) {
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b.d = d;
                for (q, v) in b.qs.iter_mut().zip(xs) {
                    *q = round_i8(v * id);
                }
                for (s, c) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
                    *s = c.iter().map(|&q| q as i16).sum();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_i8_equals_round_then_clamp() {
        let reference = |v: f32| v.round().clamp(-127.0, 127.0) as i8;
        let mut vals = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            126.5,
            -126.5,
            127.4,
            200.0,
            -1e9,
            f32::NAN,
        ];
        vals.extend([0.49999997f32, -0.49999997, 0.50000006, 126.49999, 3.4999998]);
        let mut s = 0x9E37_79B9u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            vals.push((s as f32 / u32::MAX as f32 - 0.5) * 300.0);
        }
        for v in vals {
            assert_eq!(round_i8(v), reference(v), "{v}");
        }
    }
}
