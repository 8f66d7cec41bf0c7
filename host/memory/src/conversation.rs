//! The long tier: whole conversations, content-addressed, with a summary and the facts
//! extracted from them.

use crate::cell::CellId;
use crate::hash::Hash32;
use serde::{Deserialize, Serialize};

/// A fact extracted from a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedFact {
    /// The statement.
    pub text: String,
    /// The cell it was remembered as, if any.
    pub cell: Option<CellId>,
}

/// What is stored for one conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationContent {
    /// The full transcript.
    pub transcript: String,
    /// A short gist.
    pub summary: String,
    /// Facts extracted from it.
    pub facts: Vec<ExtractedFact>,
    /// Embedding of the summary (empty without an embedder).
    pub summary_embedding: Vec<f32>,
    /// Number of values redacted from it by `forget`.
    pub redactions: u32,
}

impl ConversationContent {
    /// The canonical bytes hashed into the log.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialising an in-memory conversation cannot fail")
    }
}

/// The gist of a stored conversation, as `recall_conversations` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gist {
    /// BLAKE2b-256 of the original transcript: pass to `read_conversation`.
    pub addr: Hash32,
    /// The summary.
    pub summary: String,
    /// How many facts were extracted from it.
    pub fact_count: usize,
    /// Relevance to the query (cosine of the summary, or token overlap without embeddings).
    pub score: f32,
}
