//! The host services an embedding application injects: the model (`llm`
//! import) and the memory store (`memory` import, agency plugins only).
//!
//! The server implements these traits with the real engine and store; the
//! plugin runtime only forwards calls, enforces budgets and logs.

use crate::bindings::types::{Fact, MemoryItem};
use std::sync::Arc;

/// A side call to the served model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    /// The full prompt text.
    pub prompt: String,
    /// Upper bound on generated tokens (already capped to the plugin's budget).
    pub max_tokens: u32,
    /// When set, the answer must start with this text.
    pub forced_prefix: Option<String>,
}

/// A completed side call.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmResponse {
    /// Generated text (including the forced prefix when one was given).
    pub text: String,
    /// Tokens generated, charged to the calling plugin's budget.
    pub tokens: u32,
}

/// The model behind the `llm` import.
pub trait LlmBackend: Send + Sync {
    /// Run one completion. The error text is handed to the plugin.
    fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, String>;
}

/// The store behind the `memory` import.
pub trait MemoryBackend: Send + Sync {
    /// Items most relevant to `query`, best first, at most `limit`.
    fn search(&self, query: &str, limit: u32) -> Result<Vec<MemoryItem>, String>;
    /// A page of live items in store order.
    fn list(&self, offset: u32, limit: u32) -> Result<Vec<MemoryItem>, String>;
    /// Store a new fact; returns its id.
    fn remember(&self, fact: &Fact) -> Result<String, String>;
    /// Erase an item's content.
    fn forget(&self, id: &str) -> Result<(), String>;
    /// Replace `old_id` by a new fact, keeping the old one as history.
    fn supersede(&self, old_id: &str, fact: &Fact) -> Result<String, String>;
    /// Fold `drop_ids` into `keep_id`.
    fn merge(&self, keep_id: &str, drop_ids: &[String]) -> Result<(), String>;
    /// Set an item's strength.
    fn set_strength(&self, id: &str, strength: f32) -> Result<(), String>;
}

/// The services offered to plugins; unset ones answer with an error that
/// says the host was started without them.
#[derive(Clone, Default)]
pub struct Services {
    /// The model for `llm` calls.
    pub llm: Option<Arc<dyn LlmBackend>>,
    /// The store for `memory` calls.
    pub memory: Option<Arc<dyn MemoryBackend>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("llm", &self.llm.is_some())
            .field("memory", &self.memory.is_some())
            .finish()
    }
}
