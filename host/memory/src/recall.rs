//! Recall candidates, their features, and PMLL's "concert" default ranking.

use crate::cell::Cell;
use serde::{Deserialize, Serialize};

/// Which retrieval path proposed a candidate (bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Via(pub u8);

impl Via {
    /// Proposed by the embedding ANN index.
    pub const ANN: u8 = 1;
    /// Proposed by the κ_coarse window of a routed subject.
    pub const WINDOW: u8 = 2;
    /// Proposed by the exact lexical anchor.
    pub const ANCHOR: u8 = 4;

    /// Whether `path` proposed it.
    pub fn has(self, path: u8) -> bool {
        self.0 & path != 0
    }
}

/// The features a recall policy ranks on and a judge decides with.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Features {
    /// Cosine similarity of the query and cell embeddings (0 without embeddings).
    pub similarity: f32,
    /// Jaccard overlap of normalised query and cell tokens.
    pub lexical: f32,
    /// `e^{-(now - recorded_at)/τ}`.
    pub recency: f32,
    /// `1 - max cosine` to the other candidates (PMLL novelty over the candidate set).
    pub novelty: f32,
    /// How often the cell was returned by recall since the store opened.
    pub read_count: u32,
    /// Seconds since the cell was recorded.
    pub age_secs: f64,
    /// κ_fine similarity, computed for cells of a subject the query names: with the
    /// subject's own embedding `s` removed from both sides, the mean of
    /// `cos(q - s, c - s)` and `cos(q - s, facet)`; 0 when not computed.
    pub fine_similarity: f32,
    /// The query names the cell's subject (κ_coarse routing by tokens).
    pub kappa_match: bool,
    /// The query contains tokens of the cell's facet (κ_fine).
    pub facet_match: bool,
    /// Retrieval paths that proposed it.
    pub via: Via,
}

/// One recall candidate: the current version of a cell with its features and default score.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The cell (current version).
    pub cell: Cell,
    /// Its features.
    pub features: Features,
    /// The default (concert) score; policies may re-rank.
    pub score: f32,
}

/// PMLL concert weights: `w = α·recency + β·similarity + γ·novelty`, similarity floor, τ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Concert {
    /// Weight of recency (α).
    pub alpha: f32,
    /// Weight of similarity (β).
    pub beta: f32,
    /// Weight of novelty (γ).
    pub gamma: f32,
    /// Candidates below this similarity are dropped unless the query names them exactly
    /// (κ match or lexical anchor).
    pub floor: f32,
    /// Recency time constant in seconds (τ).
    pub tau_secs: f64,
}

impl Default for Concert {
    fn default() -> Self {
        Self {
            alpha: 0.35,
            beta: 0.50,
            gamma: 0.08,
            floor: 0.15,
            tau_secs: 6.0 * 3600.0,
        }
    }
}

impl Concert {
    /// The concert score of a candidate's features. The similarity term is the cosine,
    /// plus the κ_fine similarity when the query names the cell's subject (the cascade:
    /// a routed subject's cells are ranked by how well their facet fits the question).
    pub fn score(&self, f: &Features) -> f32 {
        let s = if f.kappa_match {
            f.similarity + f.fine_similarity
        } else {
            f.similarity
        };
        self.alpha * f.recency + self.beta * s + self.gamma * f.novelty
    }

    /// Whether a candidate survives the similarity floor.
    pub fn admits(&self, f: &Features) -> bool {
        f.similarity >= self.floor || f.kappa_match || f.via.has(Via::ANCHOR)
    }

    /// `e^{-age/τ}`.
    pub fn recency(&self, age_secs: f64) -> f32 {
        (-(age_secs.max(0.0)) / self.tau_secs).exp() as f32
    }
}

/// Recall settings stored with the memory (and carried by `.atom` files).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecallPolicy {
    /// Default ranking weights.
    pub concert: Concert,
    /// Bounded window: cells read per routed subject (k = 8).
    pub window: usize,
    /// Candidates taken from the ANN index per query.
    pub ann_candidates: usize,
    /// A query token is an anchor when at most this many current cells contain it.
    pub anchor_max_df: usize,
}

impl Default for RecallPolicy {
    fn default() -> Self {
        Self {
            concert: Concert::default(),
            window: 8,
            ann_candidates: 32,
            anchor_max_df: 64,
        }
    }
}
