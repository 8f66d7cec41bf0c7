//! The host's built-in default behaviours, used when a plugin call fails.
//!
//! They are deliberately simple and deterministic: a token-Jaccard judge at
//! 0.6 and a similarity ranking with the PMLL floor of 0.15.

use crate::bindings::types::{Candidate, Ranked, Verdict};
use std::collections::BTreeSet;

/// Judge threshold of the built-in judge.
pub const JUDGE_THRESHOLD: f32 = 0.6;
/// Similarity floor of the built-in ranking.
pub const SIMILARITY_FLOOR: f32 = 0.15;

fn tokens(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == ':'))
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| t.len() > 2)
        .map(str::to_string)
        .collect()
}

/// Built-in judge: token Jaccard of query and candidate ≥ 0.6.
pub fn judge(query: &str, candidates: &[Candidate]) -> Vec<Verdict> {
    let q = tokens(query);
    candidates
        .iter()
        .map(|c| {
            let t = tokens(&c.text);
            let inter = q.intersection(&t).count();
            let union = q.union(&t).count();
            let j = if union == 0 {
                0.0
            } else {
                inter as f32 / union as f32
            };
            Verdict {
                accept: j >= JUDGE_THRESHOLD,
                confidence: j,
                evidence: format!("built-in judge: jaccard {j:.3}"),
            }
        })
        .collect()
}

/// Built-in ranking: by similarity, best first, dropping those under the floor.
pub fn rank(candidates: &[Candidate]) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.features.similarity >= SIMILARITY_FLOOR)
        .map(|(i, c)| Ranked {
            index: i as u32,
            score: c.features.similarity,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    out
}
