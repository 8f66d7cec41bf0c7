//! Integer RMSNorm: `y_i = x_i * w_i / sqrt(mean(x^2) + eps)`.
//!
//! With `X_i`, `W_i` the Q15.16 raws of `x_i`, `w_i` and `E = round(eps * 2^32)`:
//!
//! 1. `S = Σ X_i²` exactly (`u128`), `D = S + n·E` (the mean square plus epsilon, times `n`,
//!    in units of `2^-32`);
//! 2. `INV = floor(sqrt(floor(n · 2^96 / D)))`, which equals `floor(2^48 / rms)` exactly (the
//!    identity `floor(sqrt(floor(t))) = floor(sqrt(t))`), so `1/rms` carries 32 fractional bits
//!    beyond the activation format;
//! 3. `Y_i = round(X_i · W_i · INV / 2^48)`, ties away from zero, saturated to `i32`.
//!
//! Error bound (tested on random rows of every magnitude): `|Y_i − 2^16·y_i| ≤ 1` ulp of Q15.16,
//! where `y_i` is the `f64` RMSNorm of the same fixed-point inputs with `eps = E / 2^32`.

use crate::error::{check_len, ExactError};
use crate::fixed::{f32_parts, isqrt_u128, parts_to_fixed, round_shift_i128, saturate_i32};

/// Fractional bits of the RMSNorm epsilon (`E = round(eps · 2^32)`).
pub const RMS_EPS_FRAC_BITS: u32 = 32;

/// The largest row length [`rms_norm`] accepts (`n · 2^96` must fit a `u128`).
pub const RMS_MAX_LEN: usize = 1 << 24;

/// Converts an f32 epsilon (its bits, e.g. from `llama.attention.layer_norm_rms_epsilon`) to
/// the Q32 integer [`rms_norm`] takes, with integer operations only.
pub fn rms_eps_from_f32_bits(bits: u32) -> Result<u64, ExactError> {
    let err = ExactError::UnrepresentableFloat {
        what: "RMSNorm epsilon",
        bits,
    };
    let (m, e) = f32_parts(bits).ok_or(err.clone())?;
    let v = parts_to_fixed(m, e, RMS_EPS_FRAC_BITS).ok_or(err.clone())?;
    u64::try_from(v).map_err(|_| err)
}

/// RMSNorm of one row of Q15.16 activations, scaled by a Q15.16 weight, into `out`.
///
/// All three slices must have the same length `n` with `1 <= n <= RMS_MAX_LEN`. A row of zeros
/// with `eps_q32 == 0` produces zeros. Never allocates.
pub fn rms_norm(
    x: &[i32],
    weight: &[i32],
    eps_q32: u64,
    out: &mut [i32],
) -> Result<(), ExactError> {
    let n = x.len();
    if n == 0 || n > RMS_MAX_LEN {
        return Err(ExactError::UnsupportedDimension {
            what: "RMSNorm row length",
            len: n,
            supported: "1..=2^24",
        });
    }
    check_len("RMSNorm weight", n, weight.len())?;
    check_len("RMSNorm output", n, out.len())?;
    let inv = rms_inverse(x, eps_q32);
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(weight) {
        let v = xi as i128 * wi as i128 * inv as i128;
        *o = saturate_i32(round_shift_i128(v, 48));
    }
    Ok(())
}

/// `floor(2^48 / rms(x))` for the row, as described in the module docs (0 when `D == 0`).
fn rms_inverse(x: &[i32], eps_q32: u64) -> u128 {
    let n = x.len() as u128;
    let s: u128 = x.iter().map(|&v| (v as i64 * v as i64) as u128).sum();
    let d = s + n * eps_q32 as u128;
    if d == 0 {
        return 0;
    }
    isqrt_u128((n << 96) / d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn reference(x: &[i32], w: &[i32], eps_q32: u64) -> Vec<f64> {
        let n = x.len() as f64;
        let xs: Vec<f64> = x.iter().map(|&v| v as f64 / 65536.0).collect();
        let ms = xs.iter().map(|v| v * v).sum::<f64>() / n + eps_q32 as f64 / 2f64.powi(32);
        let r = ms.sqrt();
        xs.iter()
            .zip(w)
            .map(|(v, &wi)| v / r * (wi as f64 / 65536.0) * 65536.0)
            .collect()
    }

    #[test]
    fn matches_f64_within_one_ulp() {
        let mut rng = Rng::new(11);
        let eps = rms_eps_from_f32_bits(1e-5f32.to_bits()).unwrap();
        let mut worst = 0f64;
        for case in 0..400 {
            let n = [1, 2, 7, 64, 576, 896, 2048][case % 7];
            // magnitudes from 2^-10 to 2^12
            let mag = 1i64 << (6 + case % 22);
            let x: Vec<i32> = (0..n).map(|_| rng.range_i64(-mag, mag) as i32).collect();
            let w: Vec<i32> = (0..n)
                .map(|_| rng.range_i64(-4 << 16, 4 << 16) as i32)
                .collect();
            let mut out = vec![0; n];
            rms_norm(&x, &w, eps, &mut out).unwrap();
            for (o, r) in out.iter().zip(reference(&x, &w, eps)) {
                if r.abs() < 2e9 {
                    worst = worst.max((*o as f64 - r).abs());
                }
            }
        }
        eprintln!("measured: rms_norm worst error {worst:.4} ulp (Q16)");
        assert!(worst <= 1.0, "worst error {worst} ulp");
    }

    #[test]
    fn eps_conversion_and_errors() {
        assert_eq!(rms_eps_from_f32_bits(1e-6f32.to_bits()).unwrap(), 4295);
        assert_eq!(rms_eps_from_f32_bits(1e-5f32.to_bits()).unwrap(), 42950);
        assert!(rms_eps_from_f32_bits(f32::NAN.to_bits()).is_err());
        assert!(rms_eps_from_f32_bits((-1e-5f32).to_bits()).is_err());
        let mut out = [0; 2];
        assert!(rms_norm(&[1, 2], &[1], 0, &mut out).is_err());
        assert!(rms_norm(&[], &[], 0, &mut []).is_err());
        rms_norm(&[0, 0], &[1, 1], 0, &mut out).unwrap();
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn unit_weight_normalises_to_unit_rms() {
        let x = [3 << 16, -(4 << 16)];
        let w = [1 << 16, 1 << 16];
        let mut out = [0; 2];
        rms_norm(&x, &w, 0, &mut out).unwrap();
        // rms = sqrt(12.5) = 3.5355...; 3/rms = 0.848528..., 4/rms = 1.131370...
        assert_eq!(out, [55_609, -74_146]);
    }
}
