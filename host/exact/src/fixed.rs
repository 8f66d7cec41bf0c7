//! Fixed-point formats, the rounding rule, and exact conversions from IEEE-754 bits.
//!
//! Every conversion here works on the raw bits of a float with integer operations only; no
//! floating-point instruction is executed, so the result is the same on every machine.

use crate::error::ExactError;

/// Fractional bits of an activation: activations are `i32` in Q15.16 (two's complement),
/// so the value of a raw `r` is `r / 2^16`, the range is `[-32768, 32768)` and the resolution
/// (one *ulp*) is `2^-16 ≈ 1.53e-5`.
pub const ACT_FRAC_BITS: u32 = 16;

/// The activation value `1.0` in Q15.16.
pub const ACT_ONE: i32 = 1 << ACT_FRAC_BITS;

/// Fractional bits of a probability or a gate value: `u32` (or `i64` internally) in Q2.30,
/// so `1.0` is `2^30` and one ulp is `2^-30 ≈ 9.3e-10`.
pub const PROB_FRAC_BITS: u32 = 30;

/// The probability `1.0` in Q2.30.
pub const PROB_ONE: u32 = 1 << PROB_FRAC_BITS;

/// Fractional bits of a cosine or sine produced by the CORDIC: `i32` in Q1.30.
pub const TRIG_FRAC_BITS: u32 = 30;

/// Fractional bits of the exact accumulator of a quantized dot product: `i128` in Q87.40.
///
/// Every block term of every supported weight format is an integer multiple of `2^-40`, so the
/// accumulator holds the dot product of the quantized operands *exactly* (see [`crate::quant`]).
pub const DOT_FRAC_BITS: u32 = 40;

/// Rounds `v / 2^s` to the nearest integer, ties away from zero.
///
/// This is the crate's single rounding rule for right shifts; it is symmetric, so negating an
/// input negates the output. `v` must not be `i128::MIN` (no caller gets near it: every
/// accumulator in the crate stays below `2^124` in magnitude).
#[inline]
pub fn round_shift_i128(v: i128, s: u32) -> i128 {
    if s == 0 {
        return v;
    }
    // Branch-free (the sign of activations is unpredictable): with m = 0 or −1 for the sign,
    // |v| = (v ^ m) − m, and negating the rounded magnitude back is (r ^ m) − m.
    let half = 1i128 << (s - 1);
    let m = v >> 127;
    let r = (((v ^ m) - m) + half) >> s;
    (r ^ m) - m
}

/// [`round_shift_i128`] for `i64` (`v` must not be `i64::MIN`).
#[inline]
pub fn round_shift_i64(v: i64, s: u32) -> i64 {
    if s == 0 {
        return v;
    }
    let half = 1i64 << (s - 1);
    let m = v >> 63;
    let r = (((v ^ m) - m) + half) >> s;
    (r ^ m) - m
}

/// Clamps an integer to the `i32` range (the saturation rule of every island's output).
#[inline]
pub fn saturate_i32(v: i128) -> i32 {
    v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// An IEEE-754 binary16 value decoded exactly as `mant * 2^exp`.
///
/// `mant` is in `[-2047, 2047]` and `exp` in `[-24, 5]` for every finite f16; `None` is
/// returned for infinities and NaNs.
#[inline]
pub fn f16_parts(bits: u16) -> Option<(i32, i32)> {
    let e = ((bits >> 10) & 0x1f) as i32;
    let f = (bits & 0x3ff) as i32;
    if e == 0x1f {
        return None;
    }
    Some(f16_parts_finite(bits, e, f))
}

/// [`f16_parts`] for bits already known to be finite (validated at load time).
#[inline(always)]
pub(crate) fn f16_parts_unchecked(bits: u16) -> (i32, i32) {
    let e = ((bits >> 10) & 0x1f) as i32;
    let f = (bits & 0x3ff) as i32;
    f16_parts_finite(bits, e, f)
}

#[inline(always)]
fn f16_parts_finite(bits: u16, e: i32, f: i32) -> (i32, i32) {
    let (m, x) = if e == 0 {
        (f, -24)
    } else {
        (f | 0x400, e - 25)
    };
    (if bits & 0x8000 != 0 { -m } else { m }, x)
}

/// An IEEE-754 binary32 value decoded exactly as `mant * 2^exp` (`None` for inf/NaN).
///
/// `mant` is in `[-(2^24 - 1), 2^24 - 1]` and `exp` in `[-149, 104]`.
#[inline]
pub fn f32_parts(bits: u32) -> Option<(i64, i32)> {
    let e = ((bits >> 23) & 0xff) as i32;
    let f = (bits & 0x7f_ffff) as i64;
    if e == 0xff {
        return None;
    }
    let (m, x) = if e == 0 {
        (f, -149)
    } else {
        (f | 0x80_0000, e - 150)
    };
    Some((if bits & 0x8000_0000 != 0 { -m } else { m }, x))
}

/// Converts `mant * 2^exp` to a fixed-point integer with `frac_bits` fractional bits,
/// rounding ties away from zero; `None` if the result does not fit an `i64`.
pub fn parts_to_fixed(mant: i64, exp: i32, frac_bits: u32) -> Option<i64> {
    let shift = exp + frac_bits as i32;
    if mant == 0 {
        return Some(0);
    }
    if shift >= 0 {
        if shift >= 63 {
            return None;
        }
        (mant as i128)
            .checked_shl(shift as u32)
            .filter(|v| *v >= i64::MIN as i128 && *v <= i64::MAX as i128)
            .map(|v| v as i64)
    } else {
        let s = (-shift) as u32;
        if s >= 100 {
            return Some(0);
        }
        Some(round_shift_i128(mant as i128, s) as i64)
    }
}

/// Converts f16 bits exactly to a fixed-point `i64` with `frac_bits` fractional bits.
///
/// With `frac_bits >= 24` every finite f16 converts without any rounding (the smallest
/// subnormal is `2^-24`).
pub fn f16_to_fixed(bits: u16, frac_bits: u32, what: &'static str) -> Result<i64, ExactError> {
    let err = ExactError::UnrepresentableFloat {
        what,
        bits: bits as u32,
    };
    let (m, e) = f16_parts(bits).ok_or(err.clone())?;
    parts_to_fixed(m as i64, e, frac_bits).ok_or(err)
}

/// Converts f32 bits to a fixed-point `i32` with `frac_bits` fractional bits (round to nearest,
/// ties away from zero); an error for NaN, infinities and values outside the `i32` range.
///
/// This is how a float tensor (an embedding row, a norm weight) enters the exact path, e.g.
/// `f32_to_fixed_i32(x.to_bits(), ACT_FRAC_BITS, "embedding")`.
pub fn f32_to_fixed_i32(bits: u32, frac_bits: u32, what: &'static str) -> Result<i32, ExactError> {
    let err = ExactError::UnrepresentableFloat { what, bits };
    let (m, e) = f32_parts(bits).ok_or(err.clone())?;
    let v = parts_to_fixed(m, e, frac_bits).ok_or(err.clone())?;
    i32::try_from(v).map_err(|_| err)
}

/// Converts a Q15.16 activation to the bits of the nearest f32 (ties to even), with integer
/// operations only.
///
/// Values with `|raw| < 2^24` convert exactly. This is how exact-mode logits leave the islands
/// for a sampler or a digest that wants floats.
pub fn act_to_f32_bits(raw: i32) -> u32 {
    if raw == 0 {
        return 0;
    }
    let sign = if raw < 0 { 0x8000_0000u32 } else { 0 };
    let a = raw.unsigned_abs() as u64;
    let msb = 63 - a.leading_zeros() as i32; // a in [2^msb, 2^(msb+1))
    let (mut mant, mut msb) = if msb <= 23 {
        (a << (23 - msb), msb)
    } else {
        let s = (msb - 23) as u32;
        let q = a >> s;
        let rem = a & ((1u64 << s) - 1);
        let half = 1u64 << (s - 1);
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        (q, msb)
    };
    if mant >= 1 << 24 {
        mant >>= 1;
        msb += 1;
    }
    let biased = (msb - ACT_FRAC_BITS as i32 + 127) as u32;
    sign | (biased << 23) | (mant as u32 & 0x7f_ffff)
}

/// The integer square root: the largest `r` with `r * r <= n`.
pub fn isqrt_u128(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let bits = 128 - n.leading_zeros();
    // 2^ceil(bits/2) >= sqrt(n): Newton's iteration decreases monotonically from above.
    let mut x = 1u128 << bits.div_ceil(2);
    loop {
        let y = (x + n / x) >> 1;
        if y >= x {
            return x;
        }
        x = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shift_is_symmetric_and_ties_away() {
        assert_eq!(round_shift_i128(3, 1), 2); // 1.5 -> 2
        assert_eq!(round_shift_i128(-3, 1), -2);
        assert_eq!(round_shift_i128(5, 2), 1); // 1.25 -> 1
        assert_eq!(round_shift_i128(-6, 2), -2); // -1.5 -> -2
        assert_eq!(round_shift_i64(7, 0), 7);
        for v in -1000i64..1000 {
            for s in 0..6 {
                assert_eq!(round_shift_i64(-v, s), -round_shift_i64(v, s));
                let exact = v as f64 / (1u64 << s) as f64;
                let want = exact.abs().round() * exact.signum();
                assert_eq!(round_shift_i64(v, s) as f64, want, "v={v} s={s}");
            }
        }
    }

    /// The branch-free shifts equal the sign-branching definition (round the magnitude, ties
    /// away from zero, restore the sign) on values of every magnitude.
    #[test]
    fn branch_free_round_shift_equals_the_definition() {
        let mut rng = crate::test_rng::Rng::new(5);
        for _ in 0..200_000 {
            let bits = rng.below(62) as u32;
            let v = (rng.next_u64() as i64) >> (63 - bits);
            let s = rng.below(63) as u32;
            let reference = |v: i128, s: u32| {
                if s == 0 {
                    return v;
                }
                let half = 1i128 << (s - 1);
                if v >= 0 {
                    (v + half) >> s
                } else {
                    -((half - v) >> s)
                }
            };
            assert_eq!(
                round_shift_i64(v, s) as i128,
                reference(v as i128, s),
                "v={v} s={s}"
            );
            let w = (v as i128) << rng.below(64);
            let t = rng.below(127) as u32;
            assert_eq!(round_shift_i128(w, t), reference(w, t), "w={w} t={t}");
        }
    }

    #[test]
    fn every_finite_f16_decodes_exactly() {
        for bits in 0..=u16::MAX {
            let e = (bits >> 10) & 0x1f;
            match f16_parts(bits) {
                None => assert_eq!(e, 0x1f),
                Some((m, x)) => {
                    let reference = f16_reference(bits);
                    assert_eq!(m as f64 * (x as f64).exp2(), reference, "bits {bits:#06x}");
                    // Exact in Q.24.
                    let fx = f16_to_fixed(bits, 24, "t").unwrap();
                    assert_eq!(fx as f64 / (1u64 << 24) as f64, reference);
                }
            }
        }
    }

    /// An f16 decoder written independently with floats (test reference only).
    fn f16_reference(bits: u16) -> f64 {
        let s = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = ((bits >> 10) & 0x1f) as i32;
        let f = (bits & 0x3ff) as f64;
        if e == 0 {
            s * f / 1024.0 * 2f64.powi(-14)
        } else {
            s * (1.0 + f / 1024.0) * 2f64.powi(e - 15)
        }
    }

    #[test]
    fn f32_conversions_round_trip() {
        for v in [0.0f32, 1.0, -1.0, 0.5, 1e-5, -3.25, 32767.99, 1e-9, 123.456] {
            let fx = f32_to_fixed_i32(v.to_bits(), ACT_FRAC_BITS, "t").unwrap();
            let want = (v as f64 * 65536.0).abs().round() * (v as f64).signum();
            assert_eq!(fx as f64, want, "{v}");
        }
        assert!(f32_to_fixed_i32(f32::NAN.to_bits(), 16, "t").is_err());
        assert!(f32_to_fixed_i32(f32::INFINITY.to_bits(), 16, "t").is_err());
        assert!(f32_to_fixed_i32(40000.0f32.to_bits(), 16, "t").is_err());
        let mut state = 1u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let raw = (state >> 32) as i32;
            let want = (raw as f64 / 65536.0) as f32;
            assert_eq!(act_to_f32_bits(raw), want.to_bits(), "raw {raw}");
        }
        for raw in [
            i32::MIN,
            i32::MAX,
            1,
            -1,
            (1 << 24) + 1,
            (1 << 25) + 3,
            (1 << 25) + 1,
        ] {
            assert_eq!(
                act_to_f32_bits(raw),
                ((raw as f64 / 65536.0) as f32).to_bits()
            );
        }
    }

    #[test]
    fn isqrt_is_floor_sqrt() {
        for n in 0u128..100_000 {
            let r = isqrt_u128(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n);
        }
        for n in [
            u128::MAX,
            u128::MAX / 3,
            1u128 << 127,
            (1u128 << 100) + 12345,
        ] {
            let r = isqrt_u128(n);
            assert!(r * r <= n);
            assert!((r + 1).checked_mul(r + 1).is_none_or(|sq| sq > n));
        }
    }
}
