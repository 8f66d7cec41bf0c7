//! Trivial judge: accepts every candidate with confidence 1.
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
struct P;
impl Guest for P {
    fn judge(_q: String, c: Vec<Candidate>) -> Vec<Verdict> {
        c.iter()
            .map(|_| Verdict {
                accept: true,
                confidence: 1.0,
                evidence: String::new(),
            })
            .collect()
    }
}
engram_plugin_sdk::judge::export_judge!(P);
