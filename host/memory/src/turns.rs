//! The turn index: every turn of every stored conversation, searchable by embedding (an
//! [`AnnIndex`] of its own) and by BM25 over normalised tokens, ranked by a blend of both
//! with the turn's context (its neighbours) and whether the query names its speaker.
//!
//! The index lives in memory and is rebuilt from the conversation records when the store
//! opens (the turn embeddings are stored in the records, so nothing is re-embedded).

use crate::ann::{dot, AnnConfig, AnnIndex};
use crate::conversation::Turn;
use crate::hash::Hash32;
use crate::lexical::tokens;
use std::collections::HashMap;

/// Weights of the turn ranking: `score = similarity + lexical·BM25/BM25_max +
/// context·max(cos of the neighbours) + speaker·[query names the speaker]`.
/// All zero ranks by the embedding's cosine alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnWeights {
    /// Weight of the normalised BM25 score.
    pub lexical: f32,
    /// Weight of the best neighbour's cosine (a reply is read with the turn it answers).
    pub context: f32,
    /// Bonus when the query names the turn's speaker.
    pub speaker: f32,
    /// Candidates taken from each path (ANN and BM25) before blending, at least.
    pub candidates: usize,
}

impl Default for TurnWeights {
    fn default() -> Self {
        Self {
            lexical: 0.25,
            context: 0.15,
            speaker: 0.03,
            candidates: 100,
        }
    }
}

/// BM25 parameters (the usual ones).
const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

struct TurnRef {
    addr: Hash32,
    index: usize,
    len: u32,
    speaker: String,
}

/// One candidate turn with its raw features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub(crate) id: u64,
    pub(crate) similarity: f32,
    pub(crate) lexical: f32,
    pub(crate) context: f32,
    pub(crate) speaker_match: bool,
    pub(crate) score: f32,
}

/// The index of all turns.
#[derive(Default)]
pub(crate) struct TurnIndex {
    refs: HashMap<u64, TurnRef>,
    by_conv: HashMap<Hash32, Vec<u64>>,
    /// token → (turn id, term frequency)
    postings: HashMap<String, Vec<(u64, u16)>>,
    total_len: u64,
    ann: Option<AnnIndex>,
    next: u64,
}

impl TurnIndex {
    /// Index the turns of conversation `addr` (ids are consecutive within it).
    pub(crate) fn insert(&mut self, addr: Hash32, turns: &[Turn], cfg: AnnConfig) {
        self.remove(&addr);
        let mut ids = Vec::with_capacity(turns.len());
        for (index, t) in turns.iter().enumerate() {
            let id = self.next;
            self.next += 1;
            let toks = tokens(&t.indexed_text());
            let mut tf: HashMap<&str, u16> = HashMap::new();
            for tok in &toks {
                *tf.entry(tok.as_str()).or_default() += 1;
            }
            for (tok, n) in tf {
                self.postings
                    .entry(tok.to_string())
                    .or_default()
                    .push((id, n));
            }
            self.total_len += toks.len() as u64;
            if !t.embedding.is_empty() {
                let ann = self
                    .ann
                    .get_or_insert_with(|| AnnIndex::new(t.embedding.len(), cfg));
                if ann.dim() == t.embedding.len() {
                    ann.insert(id, &t.embedding);
                }
            }
            self.refs.insert(
                id,
                TurnRef {
                    addr,
                    index,
                    len: toks.len() as u32,
                    speaker: t.speaker.to_lowercase(),
                },
            );
            ids.push((id, toks));
        }
        self.by_conv
            .insert(addr, ids.into_iter().map(|(id, _)| id).collect());
    }

    /// Drop the turns of conversation `addr` (no-op when absent).
    pub(crate) fn remove(&mut self, addr: &Hash32) {
        let Some(ids) = self.by_conv.remove(addr) else {
            return;
        };
        let gone: std::collections::HashSet<u64> = ids.iter().copied().collect();
        for id in &ids {
            if let Some(r) = self.refs.remove(id) {
                self.total_len -= r.len as u64;
            }
            if let Some(a) = self.ann.as_mut() {
                a.remove(*id);
            }
        }
        self.postings.retain(|_, p| {
            p.retain(|(id, _)| !gone.contains(id));
            !p.is_empty()
        });
    }

    /// (conversation, position) of turn `id`.
    pub(crate) fn locate(&self, id: u64) -> Option<(Hash32, usize)> {
        self.refs.get(&id).map(|r| (r.addr, r.index))
    }

    /// Rebuild the embedding index if writes outgrew it.
    pub(crate) fn maintain(&mut self) {
        if let Some(a) = self.ann.as_mut() {
            if a.needs_rebuild() {
                a.rebuild();
            }
        }
    }

    /// Whether the embedding index needs a rebuild.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.ann.as_ref().is_some_and(AnnIndex::needs_rebuild)
    }

    /// BM25 of every turn sharing a token with the query (in an index of 20 turns or more,
    /// tokens found in more than half of them carry almost no weight and are skipped).
    fn bm25(&self, query: &str) -> HashMap<u64, f32> {
        let n = self.refs.len() as f32;
        let mut scores: HashMap<u64, f32> = HashMap::new();
        if n == 0.0 {
            return scores;
        }
        let avg = (self.total_len as f32 / n).max(1.0);
        let mut q = tokens(query);
        q.sort_unstable();
        q.dedup();
        for t in &q {
            let Some(post) = self.postings.get(t) else {
                continue;
            };
            let df = post.len() as f32;
            if n >= 20.0 && df > n / 2.0 {
                continue;
            }
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(id, tf) in post {
                let len = self.refs[&id].len as f32;
                let tf = tf as f32;
                let s = idf * tf * (BM25_K1 + 1.0)
                    / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * len / avg));
                *scores.entry(id).or_default() += s;
            }
        }
        scores
    }

    /// The `k` best turns for the query, best first.
    pub(crate) fn search(
        &self,
        query: &str,
        q: Option<&[f32]>,
        k: usize,
        w: &TurnWeights,
    ) -> Vec<Scored> {
        if k == 0 || self.refs.is_empty() {
            return Vec::new();
        }
        let q = q.filter(|q| self.ann.as_ref().is_some_and(|a| a.dim() == q.len()));
        let n = w.candidates.max(k);
        let mut cands: Vec<u64> = Vec::new();
        if let (Some(q), Some(ann)) = (q, self.ann.as_ref()) {
            cands.extend(ann.search(q, n).into_iter().map(|(id, _)| id));
        }
        let bm25 = if w.lexical > 0.0 || q.is_none() {
            self.bm25(query)
        } else {
            HashMap::new()
        };
        let best_bm25 = bm25.values().copied().fold(0f32, f32::max);
        let mut lex: Vec<(u64, f32)> = bm25.iter().map(|(id, s)| (*id, *s)).collect();
        lex.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        cands.extend(lex.into_iter().take(n).map(|(id, _)| id));
        cands.sort_unstable();
        cands.dedup();
        let q_tokens: std::collections::HashSet<String> = tokens(query).into_iter().collect();
        let cos = |id: u64| -> Option<f32> {
            let (q, a) = (q?, self.ann.as_ref()?);
            a.vector(id).map(|v| dot(q, v))
        };
        let same_conv = |a: u64, b: u64| match (self.refs.get(&a), self.refs.get(&b)) {
            (Some(x), Some(y)) => x.addr == y.addr,
            _ => false,
        };
        let mut out: Vec<Scored> = cands
            .into_iter()
            .filter_map(|id| {
                let r = self.refs.get(&id)?;
                let similarity = cos(id).unwrap_or(0.0);
                let lexical = if best_bm25 > 0.0 {
                    bm25.get(&id).copied().unwrap_or(0.0) / best_bm25
                } else {
                    0.0
                };
                let context = if w.context > 0.0 {
                    [id.wrapping_sub(1), id + 1]
                        .into_iter()
                        .filter(|&m| same_conv(id, m))
                        .filter_map(cos)
                        .fold(0f32, f32::max)
                } else {
                    0.0
                };
                let speaker_match = !r.speaker.is_empty()
                    && r.speaker
                        .split_whitespace()
                        .any(|part| q_tokens.contains(part));
                let score = similarity
                    + w.lexical * lexical
                    + w.context * context
                    + if speaker_match { w.speaker } else { 0.0 };
                Some(Scored {
                    id,
                    similarity,
                    lexical,
                    context,
                    speaker_match,
                    score,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: &str, text: &str, emb: Vec<f32>) -> Turn {
        Turn {
            label: String::new(),
            speaker: speaker.into(),
            text: text.into(),
            time: None,
            embedding: emb,
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn zero_weights_rank_by_cosine_alone() {
        let mut ix = TurnIndex::default();
        let turns = vec![
            turn("Ann", "the zeppelin left at noon", unit(&[1.0, 0.0, 0.2])),
            turn("Bob", "nothing to report", unit(&[0.9, 0.5, 0.0])),
            turn(
                "Ann",
                "we talked about zeppelin rides",
                unit(&[0.0, 1.0, 0.0]),
            ),
        ];
        ix.insert([1; 32], &turns, AnnConfig::default());
        let q = unit(&[1.0, 0.1, 0.0]);
        let off = TurnWeights {
            lexical: 0.0,
            context: 0.0,
            speaker: 0.0,
            candidates: 10,
        };
        let plain: Vec<u64> = ix
            .search("zeppelin Ann", Some(&q), 3, &off)
            .iter()
            .map(|s| s.id)
            .collect();
        let mut by_cos: Vec<(u64, f32)> = (0..3)
            .map(|i| (i as u64, dot(&q, &turns[i].embedding)))
            .collect();
        by_cos.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(plain, by_cos.iter().map(|x| x.0).collect::<Vec<_>>());
        for s in ix.search("zeppelin Ann", Some(&q), 3, &off) {
            assert_eq!(s.score, s.similarity);
        }
        // With the lexical weight on, the rare shared token lifts the turns that have it.
        let on = TurnWeights {
            lexical: 1.0,
            ..off
        };
        let hits = ix.search("zeppelin", Some(&q), 3, &on);
        assert_eq!(hits[2].id, 1, "the turn without the token ranks last");
    }

    #[test]
    fn removing_a_conversation_removes_its_turns() {
        let mut ix = TurnIndex::default();
        ix.insert(
            [1; 32],
            &[turn("", "alpha beta", vec![]), turn("", "gamma", vec![])],
            AnnConfig::default(),
        );
        ix.insert([2; 32], &[turn("", "alpha", vec![])], AnnConfig::default());
        let w = TurnWeights::default();
        assert_eq!(ix.search("alpha", None, 5, &w).len(), 2);
        ix.remove(&[1; 32]);
        let hits = ix.search("alpha", None, 5, &w);
        assert_eq!(hits.len(), 1);
        assert_eq!(ix.locate(hits[0].id), Some(([2; 32], 0)));
        assert!(!ix.postings.contains_key("gamma"));
    }
}
