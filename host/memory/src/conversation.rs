//! The long tier: whole conversations, content-addressed, with a summary, the facts
//! extracted from them and their turns (each with its speaker, time and embedding, so
//! recall can find the one turn that answers a question).

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

/// One turn of a conversation as the caller gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TurnInput {
    /// The caller's label for the turn (e.g. `D1:3`); empty gives its position.
    pub label: String,
    /// Who spoke.
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// When it was said (µs since the epoch), if known.
    pub time: Option<i64>,
}

/// One stored turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The caller's label (or the turn's position, from 0, as text).
    pub label: String,
    /// Who spoke (empty when unknown).
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// When it was said (µs since the epoch), if known.
    pub time: Option<i64>,
    /// Embedding of `speaker: text` (empty without an embedder).
    pub embedding: Vec<f32>,
}

impl Turn {
    /// The text embedded and indexed for the turn: the speaker's name and what was said.
    pub fn indexed_text(&self) -> String {
        if self.speaker.is_empty() {
            self.text.clone()
        } else {
            format!("{}: {}", self.speaker, self.text)
        }
    }
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
    /// The turns, in order (empty for a conversation stored before turns were kept).
    pub turns: Vec<Turn>,
}

/// The layout of a conversation record written before turns were kept.
#[derive(Deserialize)]
struct ConversationV1 {
    transcript: String,
    summary: String,
    facts: Vec<ExtractedFact>,
    summary_embedding: Vec<f32>,
    redactions: u32,
}

impl ConversationContent {
    /// The canonical bytes hashed into the log.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialising an in-memory conversation cannot fail")
    }

    /// Decode stored bytes: the current layout, or the earlier one without turns (its
    /// turns are then empty; the bytes, and so the content hash, are unchanged).
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        match postcard::from_bytes::<Self>(bytes) {
            Ok(c) => Ok(c),
            Err(e) => match postcard::from_bytes::<ConversationV1>(bytes) {
                Ok(v1) => Ok(Self {
                    transcript: v1.transcript,
                    summary: v1.summary,
                    facts: v1.facts,
                    summary_embedding: v1.summary_embedding,
                    redactions: v1.redactions,
                    turns: Vec::new(),
                }),
                Err(_) => Err(e),
            },
        }
    }
}

/// A turn found by `recall_turns`, with the features it was ranked on.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnHit {
    /// The conversation it belongs to.
    pub addr: Hash32,
    /// Its position in the conversation, from 0.
    pub index: usize,
    /// The turn.
    pub label: String,
    /// Who spoke.
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// When it was said (µs since the epoch), if known.
    pub time: Option<i64>,
    /// Cosine similarity of the query and the turn (0 without embeddings).
    pub similarity: f32,
    /// BM25 of the query's tokens in the turn, divided by the best BM25 of the query
    /// (so 1 for the best lexical match, 0 without shared tokens).
    pub lexical: f32,
    /// Best cosine of the query with the turn before or after it (its context).
    pub context: f32,
    /// The query names the turn's speaker.
    pub speaker_match: bool,
    /// The blended score turns are ranked by.
    pub score: f32,
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
