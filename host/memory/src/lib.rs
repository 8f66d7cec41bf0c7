//! Engram's memory store: nothing acknowledged is lost, everything is auditable.
//!
//! * Every write appends a [`MemoryLine`] to an anchor chain
//!   (`anchor_n = BLAKE2b(anchor_{n-1} ‖ op ‖ content-hash ‖ ctx)`); [`MemoryStore::verify`]
//!   walks it and every stored record, [`MemoryStore::seal`] exports the head (keyed BLAKE2b
//!   when a seal key is configured).
//! * Facts are [`Cell`]s keyed by κ = (subject, facet) with typed values
//!   ([`TypedValue`]) and bi-temporal history; [`MemoryStore::get`] answers "as of".
//! * [`MemoryStore::forget`] erases content provably: each record is encrypted under its
//!   own key in `keys.bin`, and forgetting destroys the key (see [`shred`]).
//! * Conversations are stored content-addressed in a long tier, turn by turn;
//!   [`MemoryStore::recall_turns`] finds the turns that answer a question.
//! * [`MemoryStore::recall`] returns [`Candidate`]s with the [`Features`] a policy needs,
//!   ranked by PMLL's concert score by default.
//! * [`atom`] exports and imports the whole memory as one verifiable `.atom` file.
//! * [`MemoryStore::state_signature`] fingerprints what the store currently knows, exactly and
//!   independent of write order, as a sum of ring products `κ ⊛ value` (see [`signature`]).

#![warn(missing_docs)]

pub mod agency;
pub mod ann;
pub mod atom;
pub mod bank;
pub mod cell;
pub mod conversation;
pub mod embedder;
pub mod error;
pub mod hash;
pub mod lexical;
pub mod line;
pub mod recall;
pub mod shred;
pub mod signature;
pub mod store;
pub mod turns;
pub mod value;

pub use ann::AnnConfig;
pub use cell::{Cell, CellContent, CellId, Fact, Remembered, Source};
pub use conversation::{ConversationContent, ExtractedFact, Gist, Turn, TurnHit, TurnInput};
pub use embedder::TextEmbedder;
pub use error::{MemoryError, Result};
pub use hash::{to_hex, Hash32};
pub use line::{MemoryLine, Op};
pub use recall::{Candidate, Concert, Features, RecallPolicy, Via};
pub use signature::StateSignature;
pub use store::{
    now_micros, parse_addr, ForgetProof, ForgetReport, MemoryConfig, MemoryStore, Problem, Seal,
    Selector, Stats, VerifyReport,
};
pub use turns::TurnWeights;
pub use value::{Shape, TypedValue};
