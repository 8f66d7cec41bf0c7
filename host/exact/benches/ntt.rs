//! NTT vs schoolbook negacyclic multiplication (`cargo bench -p engram-exact --bench ntt`).
//!
//! For each degree it times `NttPlan::multiply_exact` and `negacyclic_schoolbook` on the same
//! random inputs inside the exactness bound (|a|, |b| < 2^24), checks they agree, and prints
//! the median time per product of several rounds and the speed-up.

use std::hint::black_box;
use std::time::{Duration, Instant};

use engram_exact::ntt::{negacyclic_schoolbook, NttPlan};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Median nanoseconds per call of `f` over 7 rounds of about 100 ms each.
fn time_ns(mut f: impl FnMut()) -> f64 {
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() > Duration::from_millis(100) {
            break;
        }
        iters *= 2;
    }
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[3]
}

fn main() {
    let mut state = 2026u64;
    println!(
        "{:>5} {:>14} {:>16} {:>9}",
        "n", "ntt (µs)", "schoolbook (µs)", "speed-up"
    );
    for n in [64usize, 128, 256, 512] {
        let plan = NttPlan::new(n).expect("supported degree");
        let bound = 1i64 << 24;
        assert!(plan.exact_for(bound as u64, bound as u64));
        let a: Vec<i64> = (0..n)
            .map(|_| (splitmix(&mut state) % (2 * bound as u64)) as i64 - bound)
            .collect();
        let b: Vec<i64> = (0..n)
            .map(|_| (splitmix(&mut state) % (2 * bound as u64)) as i64 - bound)
            .collect();
        let (mut c1, mut c2) = (vec![0i64; n], vec![0i64; n]);
        plan.multiply_exact(&a, &b, &mut c1).expect("lengths match");
        negacyclic_schoolbook(&a, &b, &mut c2).expect("lengths match");
        assert_eq!(c1, c2, "NTT and schoolbook disagree at n={n}");
        let ntt = time_ns(|| {
            plan.multiply_exact(black_box(&a), black_box(&b), black_box(&mut c1))
                .unwrap()
        });
        let school = time_ns(|| {
            negacyclic_schoolbook(black_box(&a), black_box(&b), black_box(&mut c2)).unwrap()
        });
        println!(
            "{n:>5} {:>14.2} {:>16.2} {:>8.1}x",
            ntt / 1e3,
            school / 1e3,
            school / ntt
        );
    }
}
