//! Where an IVF search's time goes, on a synthetic clustered bank (no model needed):
//! `cargo run --release -p engram-memory --example ann_profile -- [N]`.
//!
//! The bank imitates `engram bench memory`: 1,000 random unit "facts", and every other
//! vector a fact + 0.35 × another + noise, normalised. Prints the list-size spread of the
//! built index, the search latency percentiles and the recall@10 against the exact scan.

use engram_memory::ann::{normalize, AnnConfig, AnnIndex};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let d = 384;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 2_000_001) as f32 / 1_000_000.0 - 1.0
    };
    let facts: Vec<Vec<f32>> = (0..1000)
        .map(|_| {
            let mut v: Vec<f32> = (0..d).map(|_| rnd()).collect();
            normalize(&mut v);
            v
        })
        .collect();
    let mut ix = AnnIndex::new(d, AnnConfig::default());
    let noise = 0.3 / (d as f32 * 0.333).sqrt();
    for i in 0..n {
        let a = &facts[((rnd() + 1.0) * 499.9) as usize];
        let b = &facts[(i * 7919 + 13) % 1000];
        let mut v: Vec<f32> = a
            .iter()
            .zip(b)
            .map(|(x, y)| x + 0.35 * y + noise * rnd())
            .collect();
        normalize(&mut v);
        ix.insert(i as u64, &v);
    }
    let t = Instant::now();
    ix.rebuild();
    println!("built {n} in {:.1} s", t.elapsed().as_secs_f64());
    let mut lat = Vec::new();
    let mut overlap = 0;
    let queries: Vec<Vec<f32>> = facts
        .iter()
        .take(200)
        .map(|f| {
            let mut q: Vec<f32> = f.iter().map(|x| x + noise * 2.0 * rnd()).collect();
            normalize(&mut q);
            q
        })
        .collect();
    for q in &queries {
        let t = Instant::now();
        let a = ix.search(q, 32);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        let e = ix.search_exact(q, 10);
        overlap += e.iter().filter(|x| a.iter().any(|y| y.0 == x.0)).count();
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "search top-32: p50 {:.3} ms p99 {:.3} ms; recall@10 within top-32 vs exact {:.3}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        overlap as f64 / (10 * queries.len()) as f64
    );
}
