//! Fixed-point exponentials: `2^-y` by range reduction, a 64-entry table and a short Taylor
//! polynomial.
//!
//! `y = k + j/64 + r` with `k` an integer, `j` in `0..64` and `0 <= r < 1/64`; then
//! `2^-y = 2^-k * T[j] * e^(-r ln 2)` where `T[j] = 2^(-j/64)` is a constant table (Q62,
//! correctly rounded, checked against `f64` in the tests) and `e^-u` for `u < 0.011` is its
//! Taylor polynomial. Two precisions are offered: [`exp2_neg_q46`] (Q30 result, degree 4, used
//! per element by softmax, SiLU and GELU) and [`exp2_neg_q62`] (Q62 result, degree 8, used once
//! per model to build the RoPE frequencies).

use crate::fixed::{ACT_FRAC_BITS, PROB_FRAC_BITS};

/// `ln 2` in Q62.
pub(crate) const LN2_Q62: u64 = 3_196_577_161_300_663_915;

/// `log2 e` in Q30.
pub(crate) const LOG2E_Q30: u64 = 1_549_082_005;

/// `2^(-j/64)` for `j` in `0..64`, Q62, correctly rounded.
pub(crate) const EXP2_NEG_Q62: [u64; 64] = [
    4_611_686_018_427_387_904,
    4_562_008_997_483_360_349,
    4_512_867_096_753_504_463,
    4_464_254_551_929_933_550,
    4_416_165_660_797_809_419,
    4_368_594_782_566_476_878,
    4_321_536_337_207_803_251,
    4_274_984_804_801_645_281,
    4_228_934_724_888_366_668,
    4_183_380_695_828_330_266,
    4_138_317_374_168_289_834,
    4_093_739_474_014_606_996,
    4_049_641_766_413_219_908,
    4_006_019_078_736_290_889,
    3_962_866_294_075_461_077,
    3_920_178_350_641_640_941,
    3_877_950_241_171_266_237,
    3_836_177_012_338_949_768,
    3_794_853_764_176_460_055,
    3_753_975_649_497_958_757,
    3_713_537_873_331_429_433,
    3_673_535_692_356_230_935,
    3_633_964_414_346_709_481,
    3_594_819_397_621_804_119,
    3_556_096_050_500_581_047,
    3_517_789_830_763_632_898,
    3_479_896_245_120_279_830,
    3_442_410_848_681_509_921,
    3_405_329_244_438_597_040,
    3_368_647_082_747_335_039,
    3_332_360_060_817_827_770,
    3_296_463_922_209_775_076,
    3_260_954_456_333_195_553,
    3_225_827_497_954_527_522,
    3_191_078_926_708_050_276,
    3_156_704_666_612_568_285,
    3_122_700_685_593_301_682,
    3_089_062_995_008_926_926,
    3_055_787_649_183_712_190,
    3_022_870_744_944_692_570,
    2_990_308_421_163_830_843,
    2_958_096_858_305_110_056,
    2_926_232_277_976_504_838,
    2_894_710_942_486_778_865,
    2_863_529_154_407_056_491,
    2_832_683_256_137_117_140,
    2_802_169_629_476_361_550,
    2_771_984_695_199_399_577,
    2_742_124_912_636_209_756,
    2_712_586_779_256_821_376,
    2_683_366_830_260_470_360,
    2_654_461_638_169_180_747,
    2_625_867_812_425_724_110,
    2_597_581_998_995_909_751,
    2_569_600_879_975_159_024,
    2_541_921_173_199_317_625,
    2_514_539_631_859_660_218,
    2_487_453_044_122_042_215,
    2_460_658_232_750_154_058,
    2_434_152_054_732_833_796,
    2_407_931_400_915_394_245,
    2_381_993_195_634_921_490,
    2_356_334_396_359_501_942,
    2_330_951_993_331_335_645,
];

/// The same table rounded to Q32 (computed at compile time from the Q62 table).
const EXP2_NEG_Q32: [u64; 64] = {
    let mut t = [0u64; 64];
    let mut j = 0;
    while j < 64 {
        t[j] = (EXP2_NEG_Q62[j] + (1 << 29)) >> 30;
        j += 1;
    }
    t
};

/// `2^(-t / 2^46)` in Q2.30, i.e. `round(2^30 * 2^-y)` for `y = t / 2^46 >= 0`, within one ulp.
///
/// The result is `2^30` exactly for `t = 0` and decreases monotonically to `0`.
#[inline]
pub fn exp2_neg_q46(t: u64) -> u32 {
    let k = t >> 46;
    if k >= 32 {
        return 0;
    }
    let f = t & ((1 << 46) - 1);
    let j = (f >> 40) as usize;
    let r = f & ((1 << 40) - 1);
    // u = r * ln 2 in Q32; u < ln2 / 64 < 0.0109.
    let u = ((r as u128 * LN2_Q62 as u128) >> 76) as u64;
    let u2 = (u * u) >> 32;
    let u3 = (u2 * u) >> 32;
    let u4 = (u3 * u) >> 32;
    let p = (1u64 << 32) - u + u2 / 2 - u3 / 6 + u4 / 24;
    let v = p as u128 * EXP2_NEG_Q32[j] as u128; // Q64
    let s = 64 - PROB_FRAC_BITS + k as u32;
    ((v + (1u128 << (s - 1))) >> s) as u32
}

/// `e^x` for a non-positive Q15.16 activation `x`, in Q2.30 (within one ulp of the correctly
/// rounded value); positive inputs are treated as `0` (the result saturates at `1.0`).
#[inline]
pub fn exp_neg_act(x: i32) -> u32 {
    if x >= 0 {
        return 1 << PROB_FRAC_BITS;
    }
    // y = -x * log2(e): Q16 * Q30 = Q46.
    const _: () = assert!(ACT_FRAC_BITS + 30 == 46);
    let t = x.unsigned_abs() as u64 * LOG2E_Q30;
    exp2_neg_q46(t)
}

/// `2^(-y / 2^62)` in Q62 for `y >= 0`, within a few ulp (used to build RoPE frequencies).
pub fn exp2_neg_q62(y: u128) -> u64 {
    let k = y >> 62;
    if k >= 63 {
        return 0;
    }
    let f = y & ((1u128 << 62) - 1);
    let j = (f >> 56) as usize;
    let r = f & ((1u128 << 56) - 1);
    let u = (r * LN2_Q62 as u128) >> 62; // Q62, < 0.0109 * 2^62
                                         // e^-u = sum (-u)^n / n!, n = 0..=8, positive and negative terms summed apart.
    let one = 1u128 << 62;
    let (mut pos, mut neg) = (one, 0u128);
    let mut term = one;
    for n in 1..=8u128 {
        term = ((term * u) >> 62) / n;
        if n % 2 == 1 {
            neg += term;
        } else {
            pos += term;
        }
    }
    let p = pos - neg;
    let v = p * EXP2_NEG_Q62[j] as u128; // Q124
    let s = 62 + k as u32;
    ((v + (1u128 << (s - 1))) >> s) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_correctly_rounded() {
        for (j, &t) in EXP2_NEG_Q62.iter().enumerate() {
            let want = (-(j as f64) / 64.0).exp2();
            let got = t as f64 / 2f64.powi(62);
            assert!((got - want).abs() <= 2e-16, "j={j}");
        }
        assert_eq!(EXP2_NEG_Q62[0], 1 << 62);
        assert_eq!(LN2_Q62 as f64 / 2f64.powi(62), std::f64::consts::LN_2);
    }

    /// Exhaustive over every Q15.16 input in [-64, 0]: at most one ulp (2^-30) from `f64` exp.
    #[test]
    fn exp_neg_act_exhaustive_within_one_ulp() {
        let mut max_err = 0f64;
        let mut prev = u32::MAX;
        for raw in (-(64 << 16)..=0).rev() {
            let got = exp_neg_act(raw);
            assert!(got <= prev, "not monotone at {raw}");
            prev = got;
            let want = (raw as f64 / 65536.0).exp() * (1u64 << 30) as f64;
            max_err = max_err.max((got as f64 - want).abs());
        }
        eprintln!("measured: exp_neg_act worst error {max_err:.4} ulp (Q30)");
        assert!(max_err <= 1.0, "max error {max_err} ulp");
        assert_eq!(exp_neg_act(0), 1 << 30);
        assert_eq!(exp_neg_act(i32::MIN), 0);
    }

    #[test]
    fn exp2_neg_q62_is_accurate() {
        let mut state = 7u64;
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // y in [0, 40)
            let y = (state as u128 * 40) >> 2; // Q62 * 40 / 2^64 * 2^62
            let got = exp2_neg_q62(y) as f64 / 2f64.powi(62);
            let yf = y as f64 / 2f64.powi(62);
            let want = (-yf).exp2();
            assert!(
                (got - want).abs() <= want * 1e-15 + 2e-19,
                "y={yf} got {got} want {want}"
            );
        }
        assert_eq!(exp2_neg_q62(0), 1 << 62);
    }
}
