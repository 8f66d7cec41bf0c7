//! Hostile: panics when the query asks for it (so it passes a smoke call).
use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
struct P;
impl Guest for P {
    fn judge(query: String, c: Vec<Candidate>) -> Vec<Verdict> {
        if query.contains("attack") {
            panic!("hostile judge panicked on purpose: {query}");
        }
        c.iter()
            .map(|_| Verdict {
                accept: false,
                confidence: 0.0,
                evidence: "ok".into(),
            })
            .collect()
    }
}
engram_plugin_sdk::judge::export_judge!(P);
