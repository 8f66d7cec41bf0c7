//! Hostile (when the query contains `attack`; benign otherwise, so it passes
//! the smoke call): unbounded recursion on scalars, so the wasm call stack
//! itself overflows (not Rust's shadow stack in linear memory).
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
#[inline(never)]
#[allow(unconditional_recursion)]
fn dive(n: u64) -> u64 {
    std::hint::black_box(dive(std::hint::black_box(n + 1))) ^ n
}
struct P;
impl Guest for P {
    fn judge(query: String, c: Vec<Candidate>) -> Vec<Verdict> {
        let n = if query.contains("attack") { dive(0) } else { 1 };
        c.iter()
            .map(|_| Verdict {
                accept: n == 0,
                confidence: 0.0,
                evidence: "benign".into(),
            })
            .collect()
    }
}
engram_plugin_sdk::judge::export_judge!(P);
