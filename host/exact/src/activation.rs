//! Integer SiLU (llama, qwen2) and GELU in its erf form (BERT), on Q15.16 activations.
//!
//! * `σ(x)` in Q2.30: `e = exp(−|x|)` by [`crate::exp::exp_neg_act`], then
//!   `σ = round(2^60 / (2^30 + e))` for `x ≥ 0` and `round(e·2^30 / (2^30 + e))` for `x < 0`.
//! * `silu(x) = round(X · σ / 2^30)`; `swiglu(g, u) = round(G · σ(g) · U / 2^46)` in one
//!   rounding.
//! * `erf(z)` for `z ≥ 0` by Abramowitz & Stegun 7.1.26 in Q30 fixed point:
//!   `t = 1/(1 + p·z)`, `erf = 1 − t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−z²)` with
//!   `e^(−z²)` from [`crate::exp::exp2_neg_q46`]; the formula's own error is `≤ 1.5e-7`.
//!   `erf(z) = 1` for `z ≥ 6`. `gelu(x) = round(X · (2^30 + sign(x)·erf(|x|/√2)) / 2^31)`.
//!
//! Error bounds (exhaustive over every Q15.16 input in `[-16, 16]`, i.e. 2,097,153 inputs, and
//! random inputs over the whole `i32` range): SiLU and SwiGLU within 1 ulp of the `f64`
//! function of the same inputs; GELU within 2 ulp (`|x| · 7.5e-8` from the A&S formula plus
//! rounding).

use crate::error::{check_len, ExactError};
use crate::exp::{exp2_neg_q46, LOG2E_Q30};
use crate::fixed::{
    round_shift_i128, round_shift_i64, saturate_i32, ACT_FRAC_BITS, PROB_FRAC_BITS,
};

const ONE_Q30: u64 = 1 << PROB_FRAC_BITS;

/// `e^(−a / 2^16)` in Q2.30 for a magnitude `a` (so `i32::MIN` needs no special case).
#[inline]
fn exp_neg_mag(a: u32) -> u64 {
    exp2_neg_q46(a as u64 * LOG2E_Q30) as u64
}

/// The logistic sigmoid `σ(x) = 1/(1+e^−x)` of a Q15.16 input, in Q2.30.
#[inline]
pub fn sigmoid_q30(x: i32) -> u32 {
    let e = exp_neg_mag(x.unsigned_abs());
    let den = ONE_Q30 + e;
    let num = if x >= 0 { ONE_Q30 } else { e } << PROB_FRAC_BITS;
    ((num + den / 2) / den) as u32
}

/// SiLU `x·σ(x)` of a Q15.16 input, in Q15.16.
#[inline]
pub fn silu(x: i32) -> i32 {
    let s = sigmoid_q30(x) as i64;
    // |x·σ(x)| <= |x|, so the result always fits.
    round_shift_i64(x as i64 * s, PROB_FRAC_BITS) as i32
}

/// Applies [`silu`] to every element of `x` in place.
pub fn silu_inplace(x: &mut [i32]) {
    for v in x {
        *v = silu(*v);
    }
}

/// The SwiGLU gate of llama/qwen2 feed-forward blocks: `out_i = silu(gate_i) · up_i`, computed
/// with a single rounding and saturated to `i32`.
pub fn swiglu(gate: &[i32], up: &[i32], out: &mut [i32]) -> Result<(), ExactError> {
    check_len("SwiGLU up", gate.len(), up.len())?;
    check_len("SwiGLU output", gate.len(), out.len())?;
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        // |g·σ| <= 2^31·2^30 fits i64, so only the product with `u` needs i128 (one
        // 64×64→128 multiply instead of a full 128-bit chain; the same integer).
        let gs = g as i64 * sigmoid_q30(g) as i64;
        let v = gs as i128 * u as i128;
        *o = saturate_i32(round_shift_i128(v, PROB_FRAC_BITS + ACT_FRAC_BITS));
    }
    Ok(())
}

/// Abramowitz & Stegun 7.1.26 constants in Q30.
const AS_P: i64 = 351_748_265; // 0.3275911
const AS_A: [i64; 5] = [
    273_621_191,    // 0.254829592
    -305_476_044,   // -0.284496736
    1_526_231_383,  // 1.421413741
    -1_560_310_108, // -1.453152027
    1_139_675_401,  // 1.061405429
];
/// `1/√2` in Q30.
const FRAC_1_SQRT2_Q30: i64 = 759_250_125;

/// `erf(z)` for a non-negative Q30 argument `z`, in Q2.30 (A&S 7.1.26, error `≤ 1.5e-7`).
pub fn erf_q30(z: u64) -> u32 {
    if z >= 6 << 30 {
        return ONE_Q30 as u32;
    }
    let one = ONE_Q30 as i64;
    let pz = round_shift_i64(AS_P * z as i64, 30);
    let den = one + pz;
    let t = ((1i64 << 60) + den / 2) / den; // Q30, in (0, 1]
    let mut poly = AS_A[4];
    for &a in AS_A[..4].iter().rev() {
        poly = a + round_shift_i64(poly * t, 30);
    }
    poly = round_shift_i64(poly * t, 30);
    // e^(-z²): z² in Q60, times log2(e) in Q30 = Q90, down to Q46.
    let z2 = z as u128 * z as u128;
    let y = (z2 * LOG2E_Q30 as u128 + (1 << 43)) >> 44;
    let ex = exp2_neg_q46(y as u64) as i64;
    let erf = one - round_shift_i64(poly * ex, 30);
    erf.clamp(0, one) as u32
}

/// GELU (erf form, as in BERT) of a Q15.16 input, in Q15.16.
#[inline]
pub fn gelu(x: i32) -> i32 {
    let z = round_shift_i64(x.unsigned_abs() as i64 * FRAC_1_SQRT2_Q30, ACT_FRAC_BITS) as u64;
    let erf = erf_q30(z) as i64;
    let phi2 = if x >= 0 {
        ONE_Q30 as i64 + erf
    } else {
        ONE_Q30 as i64 - erf
    }; // 2Φ(x) in Q30
       // |gelu(x)| <= |x|, so the result always fits.
    round_shift_i64(x as i64 * phi2, PROB_FRAC_BITS + 1) as i32
}

/// Applies [`gelu`] to every element of `x` in place.
pub fn gelu_inplace(x: &mut [i32]) {
    for v in x {
        *v = gelu(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn f(raw: i32) -> f64 {
        raw as f64 / 65536.0
    }

    fn silu_ref(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    /// Exhaustive over [-16, 16] plus random i32 inputs.
    fn inputs() -> impl Iterator<Item = i32> {
        let mut rng = Rng::new(3);
        (-(16 << 16)..=(16 << 16)).chain((0..300_000).map(move |_| rng.next_u64() as i32))
    }

    #[test]
    fn silu_within_one_ulp() {
        let worst = inputs()
            .map(|x| (silu(x) as f64 - silu_ref(f(x)) * 65536.0).abs())
            .fold(0f64, f64::max);
        eprintln!("measured: silu worst error {worst:.4} ulp (Q16)");
        assert!(worst <= 1.0, "worst SiLU error {worst} ulp");
    }

    #[test]
    fn gelu_within_two_ulp() {
        let worst = inputs()
            .map(|x| (gelu(x) as f64 - gelu_ref(f(x)) * 65536.0).abs())
            .fold(0f64, f64::max);
        eprintln!("measured: gelu worst error {worst:.4} ulp (Q16)");
        assert!(worst <= 2.0, "worst GELU error {worst} ulp");
    }

    #[test]
    fn erf_within_a_and_s_bound() {
        let mut worst = 0f64;
        for i in 0..200_000u64 {
            let z = i * (7 << 30) / 200_000;
            let got = erf_q30(z) as f64 / 2f64.powi(30);
            worst = worst.max((got - libm::erf(z as f64 / 2f64.powi(30))).abs());
        }
        eprintln!("measured: erf worst error {worst:.3e}");
        assert!(worst <= 1.6e-7, "worst erf error {worst}");
    }

    #[test]
    fn swiglu_within_one_ulp() {
        let mut rng = Rng::new(9);
        let n = 100_000;
        let g: Vec<i32> = (0..n)
            .map(|_| rng.range_i64(-(20 << 16), 20 << 16) as i32)
            .collect();
        let u: Vec<i32> = (0..n)
            .map(|_| rng.range_i64(-(20 << 16), 20 << 16) as i32)
            .collect();
        let mut out = vec![0; n];
        swiglu(&g, &u, &mut out).unwrap();
        let worst = (0..n)
            .map(|i| (out[i] as f64 - silu_ref(f(g[i])) * f(u[i]) * 65536.0).abs())
            .fold(0f64, f64::max);
        eprintln!("measured: swiglu worst error {worst:.4} ulp (Q16)");
        assert!(worst <= 1.0, "worst SwiGLU error {worst} ulp");
        assert!(swiglu(&g, &u[1..], &mut out).is_err());
    }

    #[test]
    fn sigmoid_edges() {
        assert_eq!(sigmoid_q30(0), 1 << 29);
        assert_eq!(sigmoid_q30(i32::MAX), 1 << 30);
        assert_eq!(sigmoid_q30(i32::MIN), 0);
        assert_eq!(silu(i32::MIN), 0);
        assert_eq!(silu(i32::MAX), i32::MAX);
        assert_eq!(gelu(i32::MAX), i32::MAX);
    }
}
