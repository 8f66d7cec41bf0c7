//! Element-wise and per-row operations: LayerNorm, GELU, softmax and their vectorisable
//! `erf`, `exp` and sums.

simd_dispatch! {
    /// Normalises every `gamma.len()`-wide row of `x` in place:
    /// `(x - mean) / sqrt(var + eps) * gamma + beta` (biased variance, as PyTorch).
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_impl
}

simd_dispatch! {
    /// The erf-based ("exact") GELU, `x · Φ(x) = 0.5 · x · (1 + erf(x / √2))`, in place; see
    /// [`erf`].
    pub fn gelu(x: &mut [f32]) => gelu_impl
}

#[inline(always)]
fn layer_norm_impl(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = gamma.len();
    for row in x.chunks_exact_mut(d) {
        let mean = sum(row) / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// GELU body. erf is evaluated by [`erf`], a rational approximation accurate to 5e-7 absolute
/// that the compiler vectorises (a libm call per element would cost about a tenth of the
/// forward pass).
#[inline(always)]
fn gelu_impl(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The error function in f32: `x·P(x²)/Q(x²)` on `x` clamped to [-4, 4] (outside it erf is ±1
/// in f32), the minimax rational approximation Eigen and TensorFlow use; absolute error below
/// 5e-7 (checked against libm in the tests). Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.9546e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[0];
    for c in &ALPHA[1..] {
        p = p * x2 + c;
    }
    let mut q = BETA[0];
    for c in &BETA[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

/// Sum of a slice, accumulated in eight lanes.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Softmax of `x` in place (max-subtracted for stability), vectorisable: [`exp`] and
/// eight-lane sums instead of libm calls and a serial sum.
#[inline(always)]
pub fn softmax(x: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let mut max = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..8 {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    max = lanes.iter().copied().fold(max, f32::max);
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum(x);
    for v in x {
        *v *= inv;
    }
}

/// `eˣ` in f32 without a libm call, so loops over it vectorise: `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, `eʳ` by the Cephes `expf` polynomial, `2ⁿ` assembled in the exponent
/// bits. Relative error below 3e-7 (checked against std in the tests); inputs above 88 give
/// e⁸⁸, inputs below -87 (where f32 results turn denormal) give 0.
#[inline(always)]
pub fn exp(x_in: f32) -> f32 {
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x_in.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x_in < -87.0 {
        0.0
    } else {
        er * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::linear::Kernel;

    #[test]
    fn layer_norm_matches_definition() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0];
        layer_norm(
            Kernel::Portable,
            &mut x,
            &[1.0, 1.0, 2.0, 1.0],
            &[0.0, 0.0, 0.0, 0.5],
            1e-12,
        );
        let s = (1.25f32).sqrt();
        let want = [-1.5 / s, -0.5 / s, 2.0 * 0.5 / s, 1.5 / s + 0.5];
        for (g, w) in x[..4].iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        assert_eq!(&x[4..], &[0.0, 0.0, 0.0, 0.5]);
    }

    #[test]
    fn gelu_matches_known_values() {
        let mut x = vec![0.0, 1.0, -1.0, 3.0, -10.0];
        gelu(Kernel::Portable, &mut x);
        let want = [0.0, 0.841_344_7, -0.158_655_26, 2.995_950_5, 0.0];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0.0f32;
        for i in -700_000..=700_000 {
            let x = i as f32 * 1e-5;
            worst = worst.max((erf(x) - libm::erff(x)).abs());
        }
        for x in [f32::MAX, -f32::MAX, f32::INFINITY, f32::NEG_INFINITY] {
            assert!((erf(x) - x.signum()).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
        assert!(worst < 5e-7, "max |erf - libm erff| = {worst}");
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f32;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = x.exp();
            worst = worst.max(((exp(x) - want) / want).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!((exp(f32::NEG_INFINITY), exp(-1000.0)), (0.0, 0.0));
    }

    #[test]
    fn sum_and_softmax() {
        let a: Vec<f32> = (0..21).map(|i| i as f32).collect();
        assert_eq!(sum(&a), 210.0);
        let mut p = vec![1000.0, 1000.0, f32::NEG_INFINITY];
        softmax(&mut p);
        assert_eq!(p, vec![0.5, 0.5, 0.0]);
    }
}
