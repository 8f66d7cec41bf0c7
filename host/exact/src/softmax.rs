//! Integer softmax with outputs summing to exactly `1.0` (`2^30`).
//!
//! For Q15.16 scores `s_i`:
//!
//! 1. `m = max s_i`; `e_i = exp(s_i − m)` in Q2.30 by [`crate::exp::exp_neg_act`]
//!    (within one ulp; `e = 2^30` exactly at the maximum);
//! 2. `S = Σ e_i` exactly (`u64`);
//! 3. `p_i = round(e_i · 2^30 / S)` (exact integer division, ties up, computed with a
//!    reciprocal and a correction step);
//! 4. the residual `2^30 − Σ p_i` (at most `n/2 + 1` in magnitude) is added to the first
//!    maximal entry, so `Σ p_i = 2^30` exactly, for every input.
//!
//! Error bound (tested on random rows, `n` up to 4096): every entry but the first maximal one is
//! within 2 ulp (`2·2^-30`) of the `f64` softmax of the same inputs; the first maximal entry is
//! within `n/2 + 2` ulp. The rows are processed in index order but the result does not depend on
//! it (integer sums).

use crate::error::{check_len, ExactError};
use crate::exp::exp_neg_act;
use crate::fixed::PROB_FRAC_BITS;

/// The longest row [`softmax`] accepts (guarantees the residual never makes an entry negative).
pub const SOFTMAX_MAX_LEN: usize = 1 << 15;

/// Softmax of Q15.16 `scores` into Q2.30 probabilities `out` that sum to exactly `2^30`.
///
/// `scores` and `out` must have the same length `n` with `1 <= n <= SOFTMAX_MAX_LEN`. Never
/// allocates.
pub fn softmax(scores: &[i32], out: &mut [u32]) -> Result<(), ExactError> {
    let n = scores.len();
    if n == 0 || n > SOFTMAX_MAX_LEN {
        return Err(ExactError::UnsupportedDimension {
            what: "softmax row length",
            len: n,
            supported: "1..=32768",
        });
    }
    check_len("softmax output", n, out.len())?;
    let (arg, &max) =
        scores.iter().enumerate().fold(
            (0, &i32::MIN),
            |best, cur| if *cur.1 > *best.1 { cur } else { best },
        );
    let mut sum = 0u64;
    for (o, &s) in out.iter_mut().zip(scores) {
        // s - max is in [-(2^32 - 1), 0]; anything below i32::MIN is e^-32768 = 0 anyway.
        let d = (s as i64 - max as i64).max(i32::MIN as i64) as i32;
        let e = exp_neg_act(d);
        *o = e;
        sum += e as u64;
    }
    // floor(num / sum) by a reciprocal and one exact correction step (no division per entry).
    let recip = u64::MAX / sum;
    let mut total = 0u64;
    for o in out.iter_mut() {
        let num = ((*o as u64) << PROB_FRAC_BITS) + sum / 2;
        let mut quot = ((num as u128 * recip as u128) >> 64) as u64;
        while num - quot * sum >= sum {
            quot += 1;
        }
        *o = quot as u32;
        total += quot;
    }
    let residual = (1i64 << PROB_FRAC_BITS) - total as i64;
    out[arg] = (out[arg] as i64 + residual) as u32;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn sums_to_one_and_matches_f64() {
        let mut rng = Rng::new(5);
        let mut worst_other = 0f64;
        let mut worst_max_rel = 0f64;
        for case in 0..600 {
            let n = 1 + rng.below(if case % 10 == 0 { 4096 } else { 300 }) as usize;
            let spread = 1i64 << (10 + case % 12); // up to 2^21 raw = 32.0
            let x: Vec<i32> = (0..n)
                .map(|_| rng.range_i64(-spread, spread) as i32)
                .collect();
            let mut out = vec![0u32; n];
            softmax(&x, &mut out).unwrap();
            assert_eq!(out.iter().map(|&p| p as u64).sum::<u64>(), 1 << 30);
            let m = *x.iter().max().unwrap() as f64 / 65536.0;
            let es: Vec<f64> = x.iter().map(|&v| (v as f64 / 65536.0 - m).exp()).collect();
            let s: f64 = es.iter().sum();
            let arg = x
                .iter()
                .position(|&v| v == *x.iter().max().unwrap())
                .unwrap();
            for (i, (&p, e)) in out.iter().zip(&es).enumerate() {
                let err = (p as f64 - e / s * 2f64.powi(30)).abs();
                if i == arg {
                    worst_max_rel = worst_max_rel.max(err / (n as f64 / 2.0 + 2.0));
                } else {
                    worst_other = worst_other.max(err);
                }
            }
        }
        eprintln!("measured: softmax worst non-max error {worst_other:.4} ulp (Q30), max entry {worst_max_rel:.4} of n/2+2");
        assert!(worst_other <= 2.0, "worst non-max error {worst_other} ulp");
        assert!(
            worst_max_rel <= 1.0,
            "max entry outside n/2+2 ulp: {worst_max_rel}"
        );
    }

    /// The reciprocal division equals exact integer division on every row shape.
    #[test]
    fn reciprocal_division_is_exact() {
        let mut rng = Rng::new(12);
        for _ in 0..2000 {
            let n = 1 + rng.below(64) as usize;
            let x: Vec<i32> = (0..n)
                .map(|_| rng.range_i64(-(1 << 21), 1 << 21) as i32)
                .collect();
            let mut out = vec![0u32; n];
            softmax(&x, &mut out).unwrap();
            let m = *x.iter().max().unwrap();
            let e: Vec<u64> = x.iter().map(|&v| exp_neg_act(v - m) as u64).collect();
            let sum: u64 = e.iter().sum();
            let mut want: Vec<u64> = e.iter().map(|&v| ((v << 30) + sum / 2) / sum).collect();
            let arg = x.iter().position(|&v| v == m).unwrap();
            want[arg] = (want[arg] as i64 + (1i64 << 30) - want.iter().sum::<u64>() as i64) as u64;
            assert_eq!(out.iter().map(|&v| v as u64).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn extreme_inputs() {
        let mut out = [0u32; 3];
        softmax(&[i32::MIN, i32::MAX, 0], &mut out).unwrap();
        assert_eq!(out, [0, 1 << 30, 0]);
        softmax(&[7, 7, 7], &mut out).unwrap();
        assert_eq!(out.iter().sum::<u32>(), 1 << 30);
        assert!(out
            .iter()
            .all(|&p| (357_913_941..=357_913_942).contains(&p)));
        assert!(softmax(&[], &mut []).is_err());
        assert!(softmax(&[1, 2], &mut out).is_err());
    }
}
