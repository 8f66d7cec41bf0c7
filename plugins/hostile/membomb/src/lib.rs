//! Hostile: allocates 1 MiB chunks forever and touches them.
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
struct P;
impl Guest for P {
    fn judge(_q: String, _c: Vec<Candidate>) -> Vec<Verdict> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![7u8; 1 << 20]));
        }
    }
}
engram_plugin_sdk::judge::export_judge!(P);
