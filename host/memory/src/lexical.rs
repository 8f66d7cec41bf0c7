//! Normalised tokens, Jaccard overlap and the exact lexical anchor index.
//!
//! Tokens keep the characters that make identifiers (`10.0.0.7`, `ada@example.com`,
//! `INC-4521`) whole, so names, numbers and ids that an embedding blurs still match exactly.

use std::collections::{HashMap, HashSet};

/// Words too common to carry meaning in an overlap score.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "did", "for", "from", "has",
    "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "s", "so",
    "that", "the", "their", "this", "to", "was", "what", "when", "where", "which", "who", "whom",
    "why", "with", "you", "your", "tell", "can", "could", "would", "should", "we", "us", "there",
    "these", "those", "about", "any", "please", "know",
];

/// Split `text` into lower-case tokens, dropping stopwords.
pub fn tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || ".@-:/+_".contains(c))) {
        let t = raw.trim_matches(|c: char| ".-:/+_".contains(c));
        let t = t.strip_suffix("'s").unwrap_or(t);
        if t.is_empty() || STOPWORDS.contains(&t) {
            continue;
        }
        out.push(t.to_string());
    }
    out
}

/// Set of tokens of `text`.
pub fn token_set(text: &str) -> HashSet<String> {
    tokens(text).into_iter().collect()
}

/// Sorted, de-duplicated tokens of `text` (compact form kept per cell).
pub fn token_vec(text: &str) -> Vec<String> {
    let mut v = tokens(text);
    v.sort_unstable();
    v.dedup();
    v
}

/// The words a κ part is named by in a query: a subject's last `.`-separated segment and a
/// facet, with `_` read as a space (`user.build_box` → `box`, `build`; `password_hint` →
/// `hint`, `password`), sorted and de-duplicated. A whole key kept as one token would never
/// match the words of a question.
pub fn key_tokens(key: &str) -> Vec<String> {
    let last = key.rsplit('.').find(|s| !s.is_empty()).unwrap_or(key);
    token_vec(&last.replace('_', " "))
}

/// Jaccard overlap of two sorted, de-duplicated token lists.
pub fn jaccard_sorted(a: &[String], b: &[String]) -> f32 {
    let inter = intersection_sorted(a, b);
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f32 / union as f32
    }
}

/// Size of the intersection of two sorted, de-duplicated token lists.
pub fn intersection_sorted(a: &[String], b: &[String]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Jaccard overlap |a ∩ b| / |a ∪ b| (0 when both are empty).
pub fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let inter = a.iter().filter(|t| b.contains(*t)).count();
    inter as f32 / (a.len() + b.len() - inter) as f32
}

/// Inverted index token → ids, for exact lexical anchoring.
#[derive(Debug, Default)]
pub struct LexicalIndex {
    postings: HashMap<String, Vec<u64>>,
}

impl LexicalIndex {
    /// Index `id` under each of `toks`.
    pub fn insert(&mut self, id: u64, toks: &[String]) {
        for t in toks {
            self.postings.entry(t.clone()).or_default().push(id);
        }
    }

    /// Remove `id` from the postings of `toks`.
    pub fn remove(&mut self, id: u64, toks: &[String]) {
        for t in toks {
            if let Some(p) = self.postings.get_mut(t) {
                p.retain(|&x| x != id);
                if p.is_empty() {
                    self.postings.remove(t);
                }
            }
        }
    }

    /// Ids indexed under `token`.
    pub fn get(&self, token: &str) -> &[u64] {
        self.postings.get(token).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_by_their_words() {
        assert_eq!(key_tokens("user.build_box"), ["box", "build"]);
        assert_eq!(key_tokens("password_hint"), ["hint", "password"]);
        assert_eq!(key_tokens("user"), ["user"]);
        assert_eq!(key_tokens("engram"), ["engram"]);
    }

    #[test]
    fn identifiers_stay_whole() {
        assert_eq!(
            tokens("Server IP is 10.0.0.7."),
            vec!["server", "ip", "10.0.0.7"]
        );
        assert_eq!(
            tokens("Mail ada@example.com, ticket INC-4521!"),
            vec!["mail", "ada@example.com", "ticket", "inc-4521"]
        );
        assert_eq!(tokens("What is Alice's phone?"), vec!["alice", "phone"]);
    }

    #[test]
    fn jaccard_bounds() {
        let a = token_set("red green blue");
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&a, &token_set("cyan")), 0.0);
        assert!((jaccard(&a, &token_set("red cyan")) - 0.25).abs() < 1e-6);
        let (x, y) = (token_vec("red green blue"), token_vec("cyan red"));
        assert!((jaccard_sorted(&x, &y) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn index_insert_remove() {
        let mut ix = LexicalIndex::default();
        ix.insert(1, &token_vec("alpha beta"));
        ix.insert(2, &token_vec("beta"));
        assert_eq!(ix.get("beta"), &[1, 2]);
        ix.remove(1, &token_vec("alpha beta"));
        assert_eq!(ix.get("beta"), &[2]);
        assert!(ix.get("alpha").is_empty());
    }
}
