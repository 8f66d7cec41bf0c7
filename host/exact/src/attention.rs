//! Integer scaled-dot-product attention for one query head over a key/value cache.
//!
//! 1. `score_t = round(Σ_i q_i·k_t,i · c / 2^46)` in Q15.16, the sum exact in `i128`, with
//!    `c = floor(2^30/√d)` ([`attention_scale_q30`]) or a scale of the caller's choosing;
//! 2. `p = softmax(score)` by [`crate::softmax()`] (Q2.30, summing to exactly `2^30`);
//! 3. `out_i = round(Σ_t p_t·v_t,i / 2^30)`, the sum exact in `i64` (`|Σ p_t v| <= 2^30·max|v|`).
//!
//! Every sum is exact, so the result does not depend on the order positions are visited in.
//! Error bound (tested on random heads, `d` = 64, up to 512 positions): `|out − ref| <= 1 +
//! 2^-13·max_t|v_t,i|` ulp of Q15.16 against the `f64` attention of the same fixed-point inputs
//! with scale `1/√d`; the term proportional to `|v|` comes from rounding the scores to Q15.16.

use crate::error::{check_len, ExactError};
use crate::fixed::{isqrt_u128, round_shift_i128, round_shift_i64, saturate_i32, PROB_FRAC_BITS};
use crate::softmax::softmax;

/// `floor(2^30 / √d)`: the usual attention scale `1/√d` in Q2.30 (exact for powers of four).
pub fn attention_scale_q30(head_dim: usize) -> u32 {
    if head_dim == 0 {
        return 0;
    }
    isqrt_u128((1u128 << 60) / head_dim as u128) as u32
}

/// Attention of one query head `q` (length `d`) over `t = scores.len()` cached positions.
///
/// Position `j`'s key is `keys[j·stride .. j·stride + d]` and its value
/// `values[j·stride .. j·stride + d]`, so a head can be read in place from a cache that
/// interleaves heads (`stride` = elements per position). `scores` (Q15.16) and `probs` (Q2.30)
/// are caller-owned scratch of length `t`, left holding the scores and the attention weights;
/// `out` has length `d`. Never allocates.
///
/// On x86_64 with AVX2 (unless `ENGRAM_EXACT_SCALAR` forces scalar) the same integer code is
/// compiled for AVX2 and auto-vectorized; every sum is exact, so the bits are the same.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[i32],
    keys: &[i32],
    values: &[i32],
    stride: usize,
    scale_q30: u32,
    scores: &mut [i32],
    probs: &mut [u32],
    out: &mut [i32],
) -> Result<(), ExactError> {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::Kernel::Auto.uses_avx2() {
        // SAFETY: `uses_avx2` checked at run time that the CPU supports AVX2.
        return unsafe { attend_avx2(q, keys, values, stride, scale_q30, scores, probs, out) };
    }
    attend_body(q, keys, values, stride, scale_q30, scores, probs, out)
}

/// [`attend`] compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2(
    q: &[i32],
    keys: &[i32],
    values: &[i32],
    stride: usize,
    scale_q30: u32,
    scores: &mut [i32],
    probs: &mut [u32],
    out: &mut [i32],
) -> Result<(), ExactError> {
    attend_body(q, keys, values, stride, scale_q30, scores, probs, out)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body(
    q: &[i32],
    keys: &[i32],
    values: &[i32],
    stride: usize,
    scale_q30: u32,
    scores: &mut [i32],
    probs: &mut [u32],
    out: &mut [i32],
) -> Result<(), ExactError> {
    let (d, t) = (q.len(), scores.len());
    check_len("attention output", d, out.len())?;
    check_len("attention weights", t, probs.len())?;
    if t == 0 || stride < d {
        return Err(ExactError::UnsupportedDimension {
            what: "attention positions (t) or stride (must be >= head dim)",
            len: if t == 0 { 0 } else { stride },
            supported: "t >= 1, stride >= d",
        });
    }
    let need = (t - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(d))
        .ok_or(ExactError::UnsupportedDimension {
            what: "attention cache extent ((t−1)·stride + d overflows)",
            len: stride,
            supported: "extents that fit in memory",
        })?;
    check_len(
        "attention keys (at least (t−1)·stride + d)",
        need,
        keys.len().min(need),
    )?;
    check_len(
        "attention values (at least (t−1)·stride + d)",
        need,
        values.len().min(need),
    )?;
    // With |q_i| < 2^25 every product is below 2^56 and d <= 128 of them below 2^63, so the
    // dot product is exact in i64; otherwise it is accumulated in i128 (the same integer).
    let qmax = q.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let narrow = qmax < 1 << 25 && d <= 128;
    for (j, s) in scores.iter_mut().enumerate() {
        let k = &keys[j * stride..j * stride + d];
        let dot: i128 = if narrow {
            q.iter()
                .zip(k)
                .map(|(&a, &b)| a as i64 * b as i64)
                .sum::<i64>() as i128
        } else {
            q.iter()
                .zip(k)
                .map(|(&a, &b)| a as i64 as i128 * b as i128)
                .sum()
        };
        *s = saturate_i32(round_shift_i128(
            dot * scale_q30 as i128,
            16 + PROB_FRAC_BITS,
        ));
    }
    softmax(scores, probs)?;
    // Σ_t p_t·v_t,i with |Σ| <= 2^30·max|v| < 2^61: exact in i64. Positions outer, dimensions
    // inner (contiguous reads) through a stack accumulator when d <= 256.
    const MAX_D: usize = 256;
    if d <= MAX_D {
        let mut acc = [0i64; MAX_D];
        let acc = &mut acc[..d];
        for (j, &p) in probs.iter().enumerate() {
            let v = &values[j * stride..j * stride + d];
            for (a, &x) in acc.iter_mut().zip(v) {
                *a += p as i64 * x as i64;
            }
        }
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = round_shift_i64(a, PROB_FRAC_BITS) as i32;
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            let acc: i64 = probs
                .iter()
                .enumerate()
                .map(|(j, &p)| p as i64 * values[j * stride + i] as i64)
                .sum();
            *o = round_shift_i64(acc, PROB_FRAC_BITS) as i32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn scale_is_floor_inverse_sqrt() {
        assert_eq!(attention_scale_q30(64), 1 << 27);
        assert_eq!(attention_scale_q30(4), 1 << 29);
        let s = attention_scale_q30(896 / 14);
        assert_eq!(s, 1 << 27);
        let s = attention_scale_q30(80) as f64 / 2f64.powi(30);
        assert!((s - 1.0 / 80f64.sqrt()).abs() < 2f64.powi(-30));
    }

    #[test]
    fn matches_f64_attention() {
        let mut rng = Rng::new(31);
        let d = 64;
        let mut worst = 0f64;
        for case in 0..200 {
            let t = 1 + rng.below(if case % 4 == 0 { 512 } else { 40 }) as usize;
            let stride = d * (1 + case % 3);
            let mag = 1i64 << (14 + case % 5); // |q|, |k|, |v| up to 0.25 .. 4.0
            let q: Vec<i32> = (0..d).map(|_| rng.range_i64(-mag, mag) as i32).collect();
            let k: Vec<i32> = (0..t * stride)
                .map(|_| rng.range_i64(-mag, mag) as i32)
                .collect();
            let v: Vec<i32> = (0..t * stride)
                .map(|_| rng.range_i64(-mag, mag) as i32)
                .collect();
            let (mut s, mut p, mut out) = (vec![0; t], vec![0; t], vec![0; d]);
            attend(
                &q,
                &k,
                &v,
                stride,
                attention_scale_q30(d),
                &mut s,
                &mut p,
                &mut out,
            )
            .unwrap();
            let f = |x: i32| x as f64 / 65536.0;
            let sc: Vec<f64> = (0..t)
                .map(|j| {
                    (0..d).map(|i| f(q[i]) * f(k[j * stride + i])).sum::<f64>() / (d as f64).sqrt()
                })
                .collect();
            let m = sc.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..d {
                let r: f64 = (0..t).map(|j| e[j] / z * f(v[j * stride + i])).sum::<f64>() * 65536.0;
                let vmax = (0..t)
                    .map(|j| v[j * stride + i].unsigned_abs())
                    .max()
                    .unwrap() as f64;
                worst = worst.max((out[i] as f64 - r).abs() / (1.0 + vmax * 2f64.powi(-13)));
            }
        }
        eprintln!("measured: attend worst error {worst:.4} of the bound");
        assert!(worst <= 1.0, "attention error {worst} of the bound");
    }

    /// The i64 fast paths and the general paths give the same bits.
    #[test]
    fn wide_and_narrow_paths_agree() {
        let mut rng = Rng::new(8);
        for (d, mag) in [(64usize, 1i64 << 24), (64, 1 << 30), (320, 1 << 20)] {
            let t = 37;
            let q: Vec<i32> = (0..d).map(|_| rng.range_i64(-mag, mag) as i32).collect();
            let k: Vec<i32> = (0..t * d)
                .map(|_| rng.range_i64(-mag, mag) as i32)
                .collect();
            let v: Vec<i32> = (0..t * d).map(|_| rng.next_u64() as i32).collect();
            let (mut s, mut p, mut out) = (vec![0; t], vec![0; t], vec![0; d]);
            attend(
                &q,
                &k,
                &v,
                d,
                attention_scale_q30(d),
                &mut s,
                &mut p,
                &mut out,
            )
            .unwrap();
            // reference with i128 sums throughout
            let sc: Vec<i32> = (0..t)
                .map(|j| {
                    let dot: i128 = (0..d).map(|i| q[i] as i128 * k[j * d + i] as i128).sum();
                    saturate_i32(round_shift_i128(dot * attention_scale_q30(d) as i128, 46))
                })
                .collect();
            assert_eq!(s, sc);
            for i in 0..d {
                let acc: i128 = (0..t).map(|j| p[j] as i128 * v[j * d + i] as i128).sum();
                assert_eq!(out[i] as i128, round_shift_i128(acc, 30));
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let (mut s, mut p, mut o) = ([0; 2], [0; 2], [0; 4]);
        assert!(attend(&[0; 4], &[0; 7], &[0; 8], 4, 1, &mut s, &mut p, &mut o).is_err());
        assert!(attend(&[0; 4], &[0; 8], &[0; 8], 3, 1, &mut s, &mut p, &mut o).is_err());
        assert!(attend(&[0; 4], &[0; 8], &[0; 8], 4, 1, &mut s, &mut p, &mut o[..3]).is_err());
        assert!(attend(&[0; 4], &[0; 8], &[0; 8], 4, 1, &mut s, &mut p, &mut o).is_ok());
        assert_eq!(o, [0; 4]);
    }
}
