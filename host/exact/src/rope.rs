//! Rotary position embeddings with cos/sin from the fixed-point CORDIC.
//!
//! Frequencies: `f_i = base^(−2i/d)` for `i < d/2` (`d` = rotated dimensions, `base` the
//! model's `rope.freq_base`, e.g. 10000, 100000 or 1000000). The RoPE base must be an integer
//! (true of llama, SmolLM2 and qwen2 files); `log2(base)` is computed bit by bit by repeated
//! squaring in Q62, and `f_i = 2^(−2i·log2(base)/d)` by [`crate::exp::exp2_neg_q62`] — once,
//! when the table is built. For a position `p` the angle `p·f_i` is formed exactly in `u128`
//! (Q62), reduced modulo `2π`, and handed to [`crate::cordic::cos_sin_q62`].
//!
//! Two layouts, matching ggml's rope modes:
//! * [`rope_adjacent`] (llama, `LLAMA_ROPE_TYPE_NORM`): pairs `(x[2i], x[2i+1])`;
//! * [`rope_neox`] (qwen2, `LLAMA_ROPE_TYPE_NEOX`): pairs `(x[i], x[i + d/2])`.
//!
//! The rotation is `x' = round((x·c − y·s) / 2^30)`, `y' = round((x·s + y·c) / 2^30)`.
//!
//! Error bound (tested for bases 10000, 100000, 1000000, `d` = 64 and 128, positions up to
//! 32767): cos and sin within 1 ulp (`2^-30`) of the `f64` `cos(p·base^(−2i/d))`; a rotated
//! activation within 1 ulp of Q15.16 of the `f64` rotation of the same input by the exact
//! cos/sin (the float path itself computes the angle in f32, an error of up to `p·2^-24` rad).

use crate::cordic::{cos_sin_q62, TWO_PI_Q62};
use crate::error::{check_len, ExactError};
use crate::exp::exp2_neg_q62;
use crate::fixed::{f32_parts, round_shift_i64, TRIG_FRAC_BITS};

/// The largest rotated dimension [`RopeTable`] supports.
pub const ROPE_MAX_DIM: usize = 4096;

/// Per-model RoPE frequencies `base^(−2i/d)` in Q62, built once with integer arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopeTable {
    inv_freq_q62: Vec<u64>,
}

impl RopeTable {
    /// Builds the table for an integer `base >= 2` (below `2^62`) and an even rotated
    /// dimension `rot_dim` in `2..=4096`.
    pub fn new(base: u64, rot_dim: usize) -> Result<Self, ExactError> {
        if !(2..1 << 62).contains(&base) {
            return Err(ExactError::UnsupportedDimension {
                what: "RoPE base",
                len: base as usize,
                supported: "integers in 2..2^62",
            });
        }
        if !(2..=ROPE_MAX_DIM).contains(&rot_dim) || !rot_dim.is_multiple_of(2) {
            return Err(ExactError::UnsupportedDimension {
                what: "RoPE rotated dimension",
                len: rot_dim,
                supported: "even numbers in 2..=4096",
            });
        }
        let l = log2_q62(base);
        let inv_freq_q62 = (0..rot_dim / 2)
            .map(|i| exp2_neg_q62(l * (2 * i) as u128 / rot_dim as u128))
            .collect();
        Ok(Self { inv_freq_q62 })
    }

    /// [`RopeTable::new`] from the f32 bits of a `rope.freq_base` metadata value, which must
    /// hold an integer.
    pub fn from_f32_base(bits: u32, rot_dim: usize) -> Result<Self, ExactError> {
        let err = ExactError::UnrepresentableFloat {
            what: "RoPE base (must be an integer >= 2)",
            bits,
        };
        let (m, e) = f32_parts(bits).ok_or(err.clone())?;
        if m <= 0 || !(-24..=38).contains(&e) || (e < 0 && m & ((1i64 << -e) - 1) != 0) {
            return Err(err);
        }
        let base = if e >= 0 {
            (m as u64) << e
        } else {
            (m >> -e) as u64
        };
        Self::new(base, rot_dim).map_err(|_| err)
    }

    /// The number of rotated dimensions `d`.
    pub fn rot_dim(&self) -> usize {
        self.inv_freq_q62.len() * 2
    }

    /// The frequency `base^(−2i/d)` in Q62.
    pub fn inv_freq_q62(&self, i: usize) -> Option<u64> {
        self.inv_freq_q62.get(i).copied()
    }

    /// Fills `cos` and `sin` (each of length `d/2`) with Q1.30 `cos(pos·f_i)`, `sin(pos·f_i)`.
    pub fn cos_sin(&self, pos: u32, cos: &mut [i32], sin: &mut [i32]) -> Result<(), ExactError> {
        check_len("RoPE cos", self.inv_freq_q62.len(), cos.len())?;
        check_len("RoPE sin", self.inv_freq_q62.len(), sin.len())?;
        for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&self.inv_freq_q62) {
            let theta = (pos as u128 * f as u128) % TWO_PI_Q62;
            (*c, *s) = cos_sin_q62(theta);
        }
        Ok(())
    }
}

/// `log2(b)` in Q62 for an integer `1 <= b < 2^62`, by repeated squaring.
fn log2_q62(b: u64) -> u128 {
    let n = 63 - b.leading_zeros(); // floor(log2 b) <= 61
    let mut m = (b as u128) << (62 - n); // b / 2^n in Q62, in [1, 2)
    let mut result = (n as u128) << 62;
    for bit in (0..62).rev() {
        m = (m * m) >> 62;
        if m >= 2 << 62 {
            m >>= 1;
            result |= 1 << bit;
        }
    }
    result
}

#[inline]
fn rotate(x: i32, y: i32, c: i32, s: i32) -> (i32, i32) {
    let (x, y, c, s) = (x as i64, y as i64, c as i64, s as i64);
    let xr = round_shift_i64(x * c - y * s, TRIG_FRAC_BITS);
    let yr = round_shift_i64(x * s + y * c, TRIG_FRAC_BITS);
    let sat = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    (sat(xr), sat(yr))
}

fn check_head(x: &[i32], cos: &[i32], sin: &[i32]) -> Result<(), ExactError> {
    check_len("RoPE sin", cos.len(), sin.len())?;
    if x.len() < 2 * cos.len() {
        return Err(ExactError::LengthMismatch {
            what: "RoPE head (must hold at least 2 × cos.len() elements)",
            expected: 2 * cos.len(),
            actual: x.len(),
        });
    }
    Ok(())
}

/// Rotates one head of Q15.16 activations in the llama layout: pairs `(x[2i], x[2i+1])` for
/// `i < cos.len()`; elements past `2·cos.len()` are left alone.
pub fn rope_adjacent(x: &mut [i32], cos: &[i32], sin: &[i32]) -> Result<(), ExactError> {
    check_head(x, cos, sin)?;
    for (i, (&c, &s)) in cos.iter().zip(sin).enumerate() {
        (x[2 * i], x[2 * i + 1]) = rotate(x[2 * i], x[2 * i + 1], c, s);
    }
    Ok(())
}

/// Rotates one head of Q15.16 activations in the neox layout (qwen2): pairs
/// `(x[i], x[i + h])` with `h = cos.len()`; elements past `2h` are left alone.
pub fn rope_neox(x: &mut [i32], cos: &[i32], sin: &[i32]) -> Result<(), ExactError> {
    check_head(x, cos, sin)?;
    let h = cos.len();
    for (i, (&c, &s)) in cos.iter().zip(sin).enumerate() {
        (x[i], x[i + h]) = rotate(x[i], x[i + h], c, s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn log2_is_accurate() {
        for b in [
            2u64,
            3,
            10,
            10_000,
            100_000,
            1_000_000,
            500_000,
            (1 << 61) + 12345,
        ] {
            let got = log2_q62(b) as f64 / 2f64.powi(62);
            assert!((got - (b as f64).log2()).abs() < 1e-15, "b={b}");
        }
        assert_eq!(log2_q62(1 << 20), 20u128 << 62);
    }

    #[test]
    fn cos_sin_match_f64_for_model_bases() {
        let mut rng = Rng::new(23);
        for base in [10_000u64, 100_000, 1_000_000] {
            for d in [64usize, 128] {
                let table = RopeTable::new(base, d).unwrap();
                assert_eq!(table.rot_dim(), d);
                let (mut c, mut s) = (vec![0; d / 2], vec![0; d / 2]);
                let mut worst = 0f64;
                for k in 0..600 {
                    let pos = if k < 100 { k } else { rng.below(32768) as u32 };
                    table.cos_sin(pos, &mut c, &mut s).unwrap();
                    for i in 0..d / 2 {
                        let theta = pos as f64 * (base as f64).powf(-2.0 * i as f64 / d as f64);
                        worst = worst.max((c[i] as f64 - theta.cos() * 2f64.powi(30)).abs());
                        worst = worst.max((s[i] as f64 - theta.sin() * 2f64.powi(30)).abs());
                    }
                }
                eprintln!(
                    "measured: rope cos/sin base {base} d {d} worst error {worst:.4} ulp (Q30)"
                );
                assert!(worst <= 1.0, "base {base} d {d}: worst {worst} ulp");
            }
        }
    }

    #[test]
    fn layouts_rotate_the_right_pairs() {
        let table = RopeTable::from_f32_base(10000f32.to_bits(), 8).unwrap();
        let (mut c, mut s) = ([0; 4], [0; 4]);
        table.cos_sin(3, &mut c, &mut s).unwrap();
        let mut rng = Rng::new(1);
        let x: Vec<i32> = (0..10)
            .map(|_| rng.range_i64(-(8 << 16), 8 << 16) as i32)
            .collect();
        let mut adj = x.clone();
        rope_adjacent(&mut adj, &c, &s).unwrap();
        let mut neox = x.clone();
        rope_neox(&mut neox, &c, &s).unwrap();
        let rot = |a: i32, b: i32, i: usize| {
            let (cf, sf) = (c[i] as f64 / 2f64.powi(30), s[i] as f64 / 2f64.powi(30));
            (a as f64 * cf - b as f64 * sf, a as f64 * sf + b as f64 * cf)
        };
        for i in 0..4 {
            let (u, v) = rot(x[2 * i], x[2 * i + 1], i);
            assert!(
                (adj[2 * i] as f64 - u).abs() <= 0.5 && (adj[2 * i + 1] as f64 - v).abs() <= 0.5
            );
            let (u, v) = rot(x[i], x[i + 4], i);
            assert!((neox[i] as f64 - u).abs() <= 0.5 && (neox[i + 4] as f64 - v).abs() <= 0.5);
        }
        // untouched tail
        assert_eq!(&adj[8..], &x[8..]);
        assert_eq!(&neox[8..], &x[8..]);
        // position 0 is the identity
        table.cos_sin(0, &mut c, &mut s).unwrap();
        let mut id = x.clone();
        rope_adjacent(&mut id, &c, &s).unwrap();
        assert_eq!(id, x);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(RopeTable::new(1, 64).is_err());
        assert!(RopeTable::new(10000, 63).is_err());
        assert!(RopeTable::from_f32_base(10000.5f32.to_bits(), 64).is_err());
        assert!(RopeTable::from_f32_base(f32::NAN.to_bits(), 64).is_err());
        assert!(RopeTable::from_f32_base(1e6f32.to_bits(), 64).is_ok());
        let t = RopeTable::new(10000, 8).unwrap();
        assert!(t.cos_sin(1, &mut [0; 3], &mut [0; 4]).is_err());
        assert!(rope_neox(&mut [0; 6], &[0; 4], &[0; 4]).is_err());
    }
}
