//! Property tests of the NTT against schoolbook multiplication at every supported degree.

use super::prime::pow_mod;
use super::*;
use crate::test_rng::Rng;
use proptest::prelude::*;

const DEGREES: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

#[test]
fn roots_are_primitive_2n_th_roots() {
    for n in DEGREES {
        let plan = NttPlan::new(n).unwrap();
        let (r1, r2) = plan.roots();
        for (psi, q) in [(r1, Q1), (r2, Q2)] {
            let q = q as u64;
            assert_eq!(pow_mod(psi as u64, n as u64, q), q - 1, "ψ^n = −1 (n={n})");
            assert_eq!(pow_mod(psi as u64, 2 * n as u64, q), 1);
        }
    }
    assert_eq!(MODULUS, 1_152_908_312_643_096_577);
    const { assert!(MODULUS < 1 << 60) };
}

#[test]
fn bad_degrees_and_lengths_are_errors() {
    for n in [0, 3, 1024, 768] {
        assert!(NttPlan::new(n).is_err(), "n={n}");
    }
    let plan = NttPlan::new(8).unwrap();
    assert!(plan.multiply_exact(&[0; 8], &[0; 7], &mut [0; 8]).is_err());
    assert!(plan.multiply_mod(&[0; 8], &[0; 8], &mut [0; 9]).is_err());
    assert_eq!(
        plan.invert_mod(&[0; 8], &mut [0; 8]),
        Err(ExactError::NotInvertible)
    );
}

/// The largest input bound for which `multiply_exact` is guaranteed exact at degree `n`.
fn exact_bound(n: usize) -> i64 {
    let limit = ((MODULUS - 1) / 2) as u128 / n as u128;
    let b = crate::fixed::isqrt_u128(limit) as i64;
    assert!(NttPlan::new(n).unwrap().exact_for(b as u64, b as u64));
    assert!(!NttPlan::new(n)
        .unwrap()
        .exact_for(b as u64 + 1, b as u64 + 1));
    b
}

#[test]
fn exact_at_the_extreme_of_the_bound() {
    // All coefficients at ±bound: the worst case magnitude n·bound² is reached.
    for n in DEGREES {
        let b = exact_bound(n);
        let plan = NttPlan::new(n).unwrap();
        for signs in [(1, 1), (1, -1), (-1, -1)] {
            // constant inputs: coefficient n−1 is exactly ±n·b², the bound itself
            let x = vec![signs.0 * b; n];
            let y = vec![signs.1 * b; n];
            let (mut got, mut want) = (vec![0; n], vec![0; n]);
            plan.multiply_exact(&x, &y, &mut got).unwrap();
            negacyclic_schoolbook(&x, &y, &mut want).unwrap();
            assert_eq!(got, want, "n={n}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random inputs within the exactness bound, at every supported degree.
    #[test]
    fn prop_exact_matches_schoolbook(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for n in DEGREES {
            let b = exact_bound(n);
            let plan = NttPlan::new(n).unwrap();
            let x: Vec<i64> = (0..n).map(|_| rng.range_i64(-b, b + 1)).collect();
            let y: Vec<i64> = (0..n).map(|_| rng.range_i64(-b, b + 1)).collect();
            let (mut got, mut want) = (vec![0; n], vec![0; n]);
            plan.multiply_exact(&x, &y, &mut got).unwrap();
            negacyclic_schoolbook(&x, &y, &mut want).unwrap();
            prop_assert_eq!(got, want);
        }
    }

    /// Arbitrary residues modulo M at every supported degree.
    #[test]
    fn prop_mod_matches_schoolbook(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for n in DEGREES {
            let plan = NttPlan::new(n).unwrap();
            let x: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
            let y: Vec<u64> = (0..n).map(|_| rng.below(MODULUS)).collect();
            let (mut got, mut want) = (vec![0; n], vec![0; n]);
            plan.multiply_mod(&x, &y, &mut got).unwrap();
            negacyclic_schoolbook_mod(&x, &y, &mut want).unwrap();
            prop_assert_eq!(got, want);
        }
    }

    /// Binding with a key and unbinding with its inverse recovers the value exactly.
    #[test]
    fn prop_bind_unbind_round_trips(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let plan = NttPlan::new(512).unwrap();
        let key: Vec<u64> = (0..512).map(|_| rng.below(MODULUS)).collect();
        let value: Vec<u64> = (0..512).map(|_| rng.below(MODULUS)).collect();
        let mut inv = vec![0; 512];
        plan.invert_mod(&key, &mut inv).unwrap();
        let (mut bound, mut back) = (vec![0; 512], vec![0; 512]);
        plan.multiply_mod(&key, &value, &mut bound).unwrap();
        plan.multiply_mod(&inv, &bound, &mut back).unwrap();
        prop_assert_eq!(back, value);
    }
}
