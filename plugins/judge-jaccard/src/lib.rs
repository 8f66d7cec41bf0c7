//! `judge-jaccard`: the Shannon-Prime deterministic recall gate.
//!
//! A candidate is accepted when the Jaccard overlap of its content tokens with
//! the query's content tokens reaches [`THRESHOLD`] (0.6). Content tokens are
//! lowercased alphanumeric runs (dots and colons inside a run are kept, so
//! `10.0.0.7` is one token), minus a small stop-word list, with a possessive
//! `'s` and a plural `s` stripped. The confidence is the overlap itself and the
//! evidence lists the shared tokens, so every decision is auditable.

use engram_plugin_sdk::judge::{Candidate, Guest, Verdict};
use std::collections::BTreeSet;

/// Acceptance threshold on the token Jaccard overlap.
pub const THRESHOLD: f32 = 0.6;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has",
    "have", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the",
    "their", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why",
    "how", "with", "you", "your", "tell", "please", "can", "could", "would", "again",
];

/// The content tokens of `text` (see the crate docs).
pub fn content_tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let lower = text.to_lowercase();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == ':' || c == '\'')) {
        let mut t = raw.trim_matches(|c: char| c == '.' || c == ':' || c == '\'');
        if let Some(s) = t.strip_suffix("'s") {
            t = s;
        }
        let t = t.trim_end_matches('\'');
        if t.is_empty() || STOP_WORDS.contains(&t) {
            continue;
        }
        let t = if t.len() > 3
            && t.ends_with('s')
            && !t.ends_with("ss")
            && t.chars().all(char::is_alphabetic)
        {
            &t[..t.len() - 1]
        } else {
            t
        };
        out.insert(t.to_string());
    }
    out
}

/// Judge one candidate text against the query tokens.
fn verdict(query: &BTreeSet<String>, text: &str) -> Verdict {
    let cand = content_tokens(text);
    let shared: Vec<&str> = query.intersection(&cand).map(String::as_str).collect();
    let union = query.union(&cand).count();
    let overlap = if union == 0 {
        0.0
    } else {
        shared.len() as f32 / union as f32
    };
    Verdict {
        accept: overlap >= THRESHOLD,
        confidence: overlap,
        evidence: format!("jaccard {overlap:.3} on [{}]", shared.join(", ")),
    }
}

struct JaccardJudge;

impl Guest for JaccardJudge {
    fn judge(query: String, candidates: Vec<Candidate>) -> Vec<Verdict> {
        let q = content_tokens(&query);
        candidates.iter().map(|c| verdict(&q, &c.text)).collect()
    }
}

engram_plugin_sdk::judge::export_judge!(JaccardJudge);
