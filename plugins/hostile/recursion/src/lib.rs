//! Hostile: unbounded recursion.
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
#[inline(never)]
#[allow(unconditional_recursion)]
fn dive(n: u64, pad: [u64; 16]) -> u64 {
    let mut p = std::hint::black_box(pad);
    p[(n % 16) as usize] = n;
    dive(n + 1, p) + p[3]
}
struct P;
impl Guest for P {
    fn judge(_q: String, _c: Vec<Candidate>) -> Vec<Verdict> {
        let n = dive(0, [0; 16]);
        vec![Verdict { accept: n == 0, confidence: 0.0, evidence: String::new() }]
    }
}
engram_plugin_sdk::judge::export_judge!(P);
