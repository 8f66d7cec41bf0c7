//! Fixed-point CORDIC: cosine and sine of an exact angle with integer shifts and adds only.
//!
//! The angle `θ ∈ [0, 2π)` arrives in Q62 (`u128`). It is reduced to the quadrant
//! `q = round(θ / (π/2))` and a remainder `r ∈ [−π/4, π/4]`, which 61 CORDIC rotations in Q60
//! (angle table `atan(2^-i)`, pre-scaled by the inverse CORDIC gain) turn into `cos r`, `sin r`;
//! the quadrant maps them back. Results are Q1.30 `i32`, within one ulp (`2^-30`) of the
//! correctly rounded value (the CORDIC residual is about `2^-54`).

use crate::fixed::{round_shift_i128, round_shift_i64, TRIG_FRAC_BITS};

/// `2π` in Q62.
pub const TWO_PI_Q62: u128 = 28_976_077_832_308_491_370;
/// `π/2` in Q62.
pub const HALF_PI_Q62: u128 = 7_244_019_458_077_122_842;

/// The product of the CORDIC gains `Π 1/sqrt(1 + 2^-2i)`, `i = 0..61`, in Q60.
const GAIN_INV_Q60: i64 = 700_114_967_507_363_238;

/// `atan(2^-i)` in Q60 for `i = 0..61` (correctly rounded).
const ATAN_Q60: [i64; 61] = [
    905_502_432_259_640_355,
    534_549_298_976_576_474,
    282_441_168_888_798_124,
    143_371_547_418_228_444,
    71_963_988_336_308_046,
    36_017_075_762_092_179,
    18_012_932_708_689_205,
    9_007_016_009_513_623,
    4_503_576_721_087_964,
    2_251_796_950_380_271,
    1_125_899_548_928_887,
    562_949_908_682_076,
    281_474_971_118_251,
    140_737_487_656_277,
    70_368_744_090_283,
    35_184_372_077_909,
    17_592_186_043_051,
    8_796_093_022_037,
    4_398_046_511_083,
    2_199_023_255_549,
    1_099_511_627_776,
    549_755_813_888,
    274_877_906_944,
    137_438_953_472,
    68_719_476_736,
    34_359_738_368,
    17_179_869_184,
    8_589_934_592,
    4_294_967_296,
    2_147_483_648,
    1_073_741_824,
    536_870_912,
    268_435_456,
    134_217_728,
    67_108_864,
    33_554_432,
    16_777_216,
    8_388_608,
    4_194_304,
    2_097_152,
    1_048_576,
    524_288,
    262_144,
    131_072,
    65_536,
    32_768,
    16_384,
    8_192,
    4_096,
    2_048,
    1_024,
    512,
    256,
    128,
    64,
    32,
    16,
    8,
    4,
    2,
    1,
];

/// Rotation-mode CORDIC of the vector `(gain⁻¹, 0)` by `z` (Q60, `|z| <= π/4`): returns
/// `(cos z, sin z)` in Q60.
fn rotate_q60(mut z: i64) -> (i64, i64) {
    let (mut x, mut y) = (GAIN_INV_Q60, 0i64);
    for (i, &a) in ATAN_Q60.iter().enumerate() {
        let (dx, dy) = (y >> i, x >> i);
        if z >= 0 {
            x -= dx;
            y += dy;
            z -= a;
        } else {
            x += dx;
            y -= dy;
            z += a;
        }
    }
    (x, y)
}

/// `(cos θ, sin θ)` in Q1.30 for an angle `θ` in Q62; angles of `2π` or more are reduced
/// modulo `2π` first.
pub fn cos_sin_q62(theta: u128) -> (i32, i32) {
    let theta = theta % TWO_PI_Q62;
    let q = (theta + HALF_PI_Q62 / 2) / HALF_PI_Q62; // 0..=4
    let r = theta as i128 - (q * HALF_PI_Q62) as i128; // [-π/4, π/4] in Q62
    let (c, s) = rotate_q60(round_shift_i128(r, 2) as i64);
    let (c, s) = match q % 4 {
        0 => (c, s),
        1 => (-s, c),
        2 => (-c, -s),
        _ => (s, -c),
    };
    let to_q30 = |v: i64| round_shift_i64(v, 60 - TRIG_FRAC_BITS) as i32;
    (to_q30(c), to_q30(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn tables_match_f64() {
        for (i, &a) in ATAN_Q60.iter().enumerate() {
            let want = (2f64.powi(-(i as i32))).atan();
            assert!(
                (a as f64 / 2f64.powi(60) - want).abs() <= want * 1e-15 + 1e-18,
                "i={i}"
            );
        }
        let two_pi = TWO_PI_Q62 as f64 / 2f64.powi(62);
        assert_eq!(two_pi, std::f64::consts::TAU);
        assert_eq!(
            HALF_PI_Q62 as f64 / 2f64.powi(62),
            std::f64::consts::FRAC_PI_2
        );
    }

    #[test]
    fn cos_sin_within_one_ulp() {
        let mut rng = Rng::new(17);
        let mut worst = 0f64;
        for k in 0..400_000u64 {
            // sweep [0, 2π) plus random angles
            let theta = if k < 200_000 {
                TWO_PI_Q62 * k as u128 / 200_000
            } else {
                ((rng.next_u64() as u128) << 2) % TWO_PI_Q62
            };
            let (c, s) = cos_sin_q62(theta);
            let t = theta as f64 / 2f64.powi(62);
            let scale = 2f64.powi(30);
            worst = worst.max((c as f64 - t.cos() * scale).abs());
            worst = worst.max((s as f64 - t.sin() * scale).abs());
        }
        eprintln!("measured: cos_sin_q62 worst error {worst:.4} ulp (Q30)");
        assert!(worst <= 1.0, "worst CORDIC error {worst} ulp");
        assert_eq!(cos_sin_q62(0), (1 << 30, 0));
    }
}
