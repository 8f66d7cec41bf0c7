//! Engram's plugin runtime.
//!
//! Memory behaviours (recall judge, recall policy, fact capture, tools, agency
//! rounds) are WebAssembly components implementing one world of the WIT
//! package `engram:plugin@0.1.0` (see `wit/`). This crate hosts them with
//! wasmtime:
//!
//! - [`PluginHost`]: one engine (epoch interruption from one ticker thread,
//!   optional fuel, pooling allocator), a compiled-component cache keyed by
//!   content hash and engine compatibility, and loading with a WIT version
//!   check ([`version`]).
//! - [`Slot`]: the active plugin of one kind, hot-swappable (`arc-swap`;
//!   in-flight calls keep the old instance), with failure classification
//!   ([`PluginFailure`]), fail-open/fail-closed fallbacks, back-off and
//!   quarantine.
//! - Capabilities ([`manifest`]): a plugin gets a WASI capability only when
//!   its manifest asks for it and the operator grants it; every other import
//!   is linked as a trap. Judges and recall policies get none.
//! - [`services`]: the `llm` and `memory` imports, implemented by the
//!   embedding application.
//!
//! ```no_run
//! use engram_plugins::{HostConfig, PluginHost, PluginKind, Grants, Services};
//! let host = PluginHost::new(HostConfig::default(), Services::default())?;
//! let judge = host.load(PluginKind::Judge,
//!     "plugins/target/wasm32-wasip2/release/judge_jaccard.wasm".as_ref(), &Grants::default())?;
//! let answer = judge.judge("what is my server's ip?", &[]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod bindings;
pub mod cache;
pub mod config;
pub mod failure;
pub mod fallback;
pub mod host;
pub mod kind;
pub mod manifest;
mod sandbox;
pub mod services;
pub mod slot;
mod state;
pub mod version;

pub use bindings::types::{
    Candidate, Fact, Features, MemoryItem, Ranked, RoundReport, ToolError, ToolSpec, Verdict,
};
pub use cache::{CompileCache, LoadPath};
pub use config::{HostConfig, Limits};
pub use failure::{FailureKind, PluginFailure};
pub use host::{HostError, Inspection, LoadError, Loaded, PluginHost};
pub use kind::{FailurePolicy, PluginKind};
pub use manifest::{Capabilities, Effective, Grants, Manifest};
pub use services::{LlmBackend, LlmRequest, LlmResponse, MemoryBackend, Services};
pub use slot::{Answer, AnsweredBy, Slot, SlotHealth, SwapReport};
pub use state::MemoryLimitExceeded;
