//! Dot-product kernels, chosen once at run time.
//!
//! [`Kernels::detect`] picks the fastest implementation this CPU supports (AVX2+FMA on x86_64)
//! unless `ENGRAM_FORCE_SCALAR=1` is set, in which case — like [`Kernels::scalar`] — the
//! portable reference in [`scalar`] is used everywhere.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

use crate::quant::GgmlType;

/// A row dot product: weight row bytes · activation row bytes (in the weight's `ActType`).
pub type DotFn = fn(&[u8], &[u8]) -> f32;

/// Which instruction set a kernel table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable scalar code.
    Scalar,
    /// x86_64 AVX2 + FMA.
    Avx2,
}

/// A table of dot-product kernels for one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// The instruction set.
    pub isa: Isa,
    q4_0: DotFn,
    q4_1: DotFn,
    q5_0: DotFn,
    q8_0: DotFn,
    q4k: DotFn,
    q6k: DotFn,
    f32w: DotFn,
    f16w: DotFn,
    /// Plain f32 slice dot product (attention scores).
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({:?})", self.isa)
    }
}

impl Kernels {
    /// The portable scalar reference kernels.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            q4_0: scalar::dot_q4_0,
            q4_1: scalar::dot_q4_1,
            q5_0: scalar::dot_q5_0,
            q8_0: scalar::dot_q8_0,
            q4k: scalar::dot_q4k,
            q6k: scalar::dot_q6k,
            f32w: scalar::dot_f32,
            f16w: scalar::dot_f16,
            dot_f32: scalar::dot_f32_slices,
        }
    }

    /// AVX2+FMA kernels, if this CPU has them.
    pub fn avx2() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
                return Some(Kernels {
                    isa: Isa::Avx2,
                    q4_0: avx2::dot_q4_0,
                    q4_1: avx2::dot_q4_1,
                    q5_0: avx2::dot_q5_0,
                    q8_0: avx2::dot_q8_0,
                    q4k: avx2::dot_q4k,
                    q6k: avx2::dot_q6k,
                    f32w: avx2::dot_f32,
                    f16w: avx2::dot_f16,
                    dot_f32: avx2::dot_f32_slices,
                });
            }
        }
        None
    }

    /// The best kernels for this CPU, or the scalar ones when `ENGRAM_FORCE_SCALAR=1`.
    pub fn detect() -> Kernels {
        if force_scalar() {
            return Kernels::scalar();
        }
        Kernels::avx2().unwrap_or_else(Kernels::scalar)
    }

    /// The row dot product for weights of type `ty`.
    pub fn dot_for(&self, ty: GgmlType) -> DotFn {
        match ty {
            GgmlType::Q4_0 => self.q4_0,
            GgmlType::Q4_1 => self.q4_1,
            GgmlType::Q5_0 => self.q5_0,
            GgmlType::Q8_0 => self.q8_0,
            GgmlType::Q4K => self.q4k,
            GgmlType::Q6K => self.q6k,
            GgmlType::F32 => self.f32w,
            GgmlType::F16 => self.f16w,
        }
    }
}

/// True when `ENGRAM_FORCE_SCALAR` is set to something other than empty or `0`.
pub fn force_scalar() -> bool {
    std::env::var("ENGRAM_FORCE_SCALAR")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::*;

    /// A deterministic pseudo-random byte stream (xorshift).
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Random weight bytes with sane f16 scales (random bits would give NaN/inf).
    fn weights(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
        let mut b = bytes(seed, ty.row_bytes(n));
        let bb = ty.block_bytes();
        let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
        let minv = half::f16::from_f32(-0.02).to_bits().to_le_bytes();
        for blk in b.chunks_exact_mut(bb) {
            match ty {
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => blk[0..2].copy_from_slice(&scale),
                GgmlType::Q4_1 | GgmlType::Q4K => {
                    blk[0..2].copy_from_slice(&scale);
                    blk[2..4].copy_from_slice(&minv);
                }
                GgmlType::Q6K => blk[208..210].copy_from_slice(&scale),
                GgmlType::F16 => blk.copy_from_slice(&scale),
                GgmlType::F32 => blk.copy_from_slice(&0.5f32.to_le_bytes()),
            }
        }
        b
    }

    fn acts(n: usize, seed: u64) -> Vec<f32> {
        bytes(seed, n).iter().map(|&b| (b as f32 - 128.0) / 37.0).collect()
    }

    fn aligned_act(ty: ActType, x: &[f32]) -> Vec<u8> {
        // u64 storage guarantees alignment for the f32/i16 fields.
        let mut store = vec![0u64; ty.row_bytes(x.len()).div_ceil(8)];
        let buf = unsafe { std::slice::from_raw_parts_mut(store.as_mut_ptr() as *mut u8, ty.row_bytes(x.len())) };
        quantize_act_row(ty, x, buf);
        buf.to_vec()
    }

    const ALL: [GgmlType; 8] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
    ];

    #[test]
    fn simd_kernels_equal_scalar_reference() {
        let Some(simd) = Kernels::avx2() else {
            eprintln!("no AVX2 on this CPU: only the scalar kernels exist here");
            return;
        };
        let sc = Kernels::scalar();
        for ty in ALL {
            for (seed, n) in [(1u64, 256usize), (7, 512), (99, 4864)] {
                let w = weights(ty, n, seed);
                let x = acts(n, seed + 3);
                let a = aligned_act(ty.act_type(), &x);
                // Copy into u64-aligned storage so block casts succeed.
                let mut ws = vec![0u64; w.len().div_ceil(8)];
                let wb = unsafe { std::slice::from_raw_parts_mut(ws.as_mut_ptr() as *mut u8, w.len()) };
                wb.copy_from_slice(&w);
                let mut as_ = vec![0u64; a.len().div_ceil(8)];
                let ab = unsafe { std::slice::from_raw_parts_mut(as_.as_mut_ptr() as *mut u8, a.len()) };
                ab.copy_from_slice(&a);
                let r = (sc.dot_for(ty))(wb, ab);
                let s = (simd.dot_for(ty))(wb, ab);
                let tol = 1e-4 * (1.0 + r.abs());
                assert!((r - s).abs() <= tol, "{ty:?} n={n}: scalar {r} vs simd {s}");
            }
        }
    }

    #[test]
    fn quantized_dot_approximates_float_dot() {
        // The scalar kernels against dequantize-then-f32: checks the block layouts themselves.
        let sc = Kernels::scalar();
        for ty in ALL {
            let n = 512;
            let w = weights(ty, n, 5);
            let mut ws = vec![0u64; w.len().div_ceil(8)];
            let wb = unsafe { std::slice::from_raw_parts_mut(ws.as_mut_ptr() as *mut u8, w.len()) };
            wb.copy_from_slice(&w);
            let mut deq = vec![0f32; n];
            dequantize_row(ty, wb, &mut deq);
            let x = acts(n, 11);
            let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
            let a = aligned_act(ty.act_type(), &x);
            let mut as_ = vec![0u64; a.len().div_ceil(8)];
            let ab = unsafe { std::slice::from_raw_parts_mut(as_.as_mut_ptr() as *mut u8, a.len()) };
            ab.copy_from_slice(&a);
            let q = (sc.dot_for(ty))(wb, ab);
            let mag: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (q - exact).abs() <= 0.02 * mag + 1e-3,
                "{ty:?}: quantized {q} vs float {exact} (mag {mag})"
            );
        }
    }

    #[test]
    fn f32_slice_dot_matches() {
        let sc = Kernels::scalar();
        let a = acts(77, 1);
        let b = acts(77, 2);
        let r = (sc.dot_f32)(&a, &b);
        if let Some(simd) = Kernels::avx2() {
            let s = (simd.dot_f32)(&a, &b);
            assert!((r - s).abs() < 1e-3, "{r} vs {s}");
        }
    }
}
