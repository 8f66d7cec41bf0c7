//! Hostile (when the query contains `attack`; benign otherwise, so it passes the smoke call): loops forever.
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
struct P;
impl Guest for P {
    fn judge(query: String, c: Vec<Candidate>) -> Vec<Verdict> {
        if !query.contains("attack") {
            return c
                .iter()
                .map(|_| Verdict {
                    accept: false,
                    confidence: 0.0,
                    evidence: "benign".into(),
                })
                .collect();
        }
        let mut x = query.len() as u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
engram_plugin_sdk::judge::export_judge!(P);
