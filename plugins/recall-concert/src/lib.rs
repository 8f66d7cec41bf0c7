//! `recall-concert`: the PMLL "concert" recall policy.
//!
//! `w = α·recency + β·similarity + γ·novelty` with α = 0.35, β = 0.50,
//! γ = 0.08, where recency is recomputed from the candidate's age as
//! `exp(-age / τ)` with τ = 6 h. Candidates whose similarity is below the
//! floor 0.15 are dropped. Ties keep input order.

use engram_plugin_sdk::recall_policy::{Candidate, Guest, Ranked};

/// Weight of recency.
pub const ALPHA: f32 = 0.35;
/// Weight of similarity.
pub const BETA: f32 = 0.50;
/// Weight of novelty.
pub const GAMMA: f32 = 0.08;
/// Candidates below this similarity are dropped.
pub const SIMILARITY_FLOOR: f32 = 0.15;
/// Recency time constant, in seconds (6 hours).
pub const TAU_SECONDS: f64 = 6.0 * 3600.0;

/// The concert score of one candidate.
pub fn score(c: &Candidate) -> f32 {
    let age = c.features.age_seconds.max(0.0);
    let recency = (-age / TAU_SECONDS).exp() as f32;
    ALPHA * recency
        + BETA * c.features.similarity.clamp(0.0, 1.0)
        + GAMMA * c.features.novelty.clamp(0.0, 1.0)
}

struct Concert;

impl Guest for Concert {
    fn rank(_query: String, candidates: Vec<Candidate>) -> Vec<Ranked> {
        let mut out: Vec<Ranked> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.features.similarity >= SIMILARITY_FLOOR)
            .map(|(i, c)| Ranked {
                index: i as u32,
                score: score(c),
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        out
    }
}

engram_plugin_sdk::recall_policy::export_recall_policy!(Concert);
