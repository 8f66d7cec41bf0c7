//! Cells: facts keyed by κ = (subject, facet) with a typed value and bi-temporal history.

use crate::value::TypedValue;
use serde::{Deserialize, Serialize};

/// Identifier of one cell version (unique in a store, never reused).
pub type CellId = u64;

/// Where a fact came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Session the fact was stated in.
    pub session: Option<String>,
    /// Turn of that session.
    pub turn: Option<u32>,
}

impl Source {
    /// The provenance text written into a memory line's `ctx`.
    pub fn ctx(&self) -> String {
        match (&self.session, self.turn) {
            (Some(s), Some(t)) => format!("session={s} turn={t}"),
            (Some(s), None) => format!("session={s}"),
            (None, Some(t)) => format!("turn={t}"),
            (None, None) => String::new(),
        }
    }
}

/// A fact to remember.
#[derive(Debug, Clone, Default)]
pub struct Fact {
    /// κ_coarse: what the fact is about ("Alice", "build server").
    pub subject: String,
    /// κ_fine: which property ("phone", "ip address").
    pub facet: String,
    /// The value as stated ("10.0.0.7"); its shape is recognised and normalised.
    pub value: String,
    /// The surface statement ("Alice's phone is 555-0102"); derived when absent.
    pub text: Option<String>,
    /// Provenance.
    pub source: Source,
    /// When the fact started to hold (µs since the epoch); defaults to the recording time.
    pub valid_from: Option<i64>,
    /// A precomputed embedding of the surface statement; computed by the store's embedder
    /// when absent (and left empty when the store has none).
    pub embedding: Option<Vec<f32>>,
}

impl Fact {
    /// A fact with just κ and value.
    pub fn new(
        subject: impl Into<String>,
        facet: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self {
            subject: subject.into(),
            facet: facet.into(),
            value: value.into(),
            ..Self::default()
        }
    }

    /// Set the surface statement.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Set when the fact started to hold.
    pub fn valid_from(mut self, micros: i64) -> Self {
        self.valid_from = Some(micros);
        self
    }

    /// Set the provenance.
    pub fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }
}

/// The immutable, hashed content of one cell version (what the log's content hash covers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellContent {
    /// κ_coarse as written.
    pub subject: String,
    /// κ_fine as written.
    pub facet: String,
    /// The typed value.
    pub value: TypedValue,
    /// The surface statement.
    pub text: String,
    /// Provenance.
    pub source: Source,
    /// Valid time start (µs since the epoch).
    pub valid_from: i64,
    /// Embedding of `text` (empty when the store had no embedder).
    pub embedding: Vec<f32>,
}

impl CellContent {
    /// The canonical bytes hashed into the log.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialising an in-memory cell cannot fail")
    }
}

/// One version of a cell as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The version's id.
    pub id: CellId,
    /// Its content.
    pub content: CellContent,
    /// When it was recorded (transaction time, µs).
    pub recorded_at: i64,
    /// Sequence number of the memory line that recorded it.
    pub line_seq: u64,
    /// Valid time end: the `valid_from` of the version that superseded it, if any.
    pub valid_to: Option<i64>,
}

impl Cell {
    /// Whether this version held at valid time `t`.
    pub fn holds_at(&self, t: i64) -> bool {
        self.content.valid_from <= t && self.valid_to.is_none_or(|end| t < end)
    }
}

/// Normalised κ component (lower case, single spaces) used as the lookup key.
pub fn norm_key(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a `remember` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// A new κ: the cell was created.
    Created(CellId),
    /// The κ had a different current value; it became history.
    Superseded {
        /// The new version.
        id: CellId,
        /// The version it replaced.
        previous: CellId,
    },
    /// The same value was already current; nothing was written.
    Unchanged(CellId),
}

impl Remembered {
    /// The id of the current version after the call.
    pub fn id(self) -> CellId {
        match self {
            Self::Created(id) | Self::Unchanged(id) | Self::Superseded { id, .. } => id,
        }
    }
}
