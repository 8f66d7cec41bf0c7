//! Hostile (when the query contains `attack`; benign otherwise, so it passes the smoke call): allocates 1 MiB chunks forever and touches them.
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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![7u8; 1 << 20]));
        }
    }
}
engram_plugin_sdk::judge::export_judge!(P);
