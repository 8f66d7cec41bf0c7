//! Hostile: loops forever.
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
struct P;
impl Guest for P {
    fn judge(query: String, _c: Vec<Candidate>) -> Vec<Verdict> {
        let mut x = query.len() as u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
engram_plugin_sdk::judge::export_judge!(P);
