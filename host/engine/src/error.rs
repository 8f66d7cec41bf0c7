//! The engine's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
///
/// Messages name the file, tensor or key involved and what was expected, so a user can act on
/// them without reading the source.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file could not be opened or mapped.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The GGUF container is malformed, truncated or uses something we do not support.
    #[error("invalid GGUF file {path}: {what}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What was wrong, naming the key or tensor and what was expected.
        what: String,
    },
    /// A metadata key the model needs is missing or has the wrong type.
    #[error("model {path}: metadata key `{key}`: {what}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was expected.
        what: String,
    },
    /// A tensor the model needs is missing or has the wrong shape or type.
    #[error("model {path}: tensor `{tensor}`: {what}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What was expected.
        what: String,
    },
    /// The architecture named in `general.architecture` is not implemented.
    #[error("model {path}: architecture `{arch}` is not supported (supported: llama, qwen2)")]
    UnsupportedArch {
        /// The file.
        path: PathBuf,
        /// The architecture found.
        arch: String,
    },
    /// The tokenizer stored in the GGUF is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be compiled or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// A token id outside the vocabulary was given.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    BadToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// Appending tokens would exceed the session's context length.
    #[error("context overflow: the session holds {have} tokens, {adding} more would exceed its context of {ctx}; start a new session or trim the history")]
    ContextOverflow {
        /// Tokens already in the session.
        have: usize,
        /// Tokens being added.
        adding: usize,
        /// The session's context length.
        ctx: usize,
    },
    /// A session snapshot is corrupt or belongs to another model.
    #[error("session snapshot: {0}")]
    Snapshot(String),
    /// An argument was invalid (empty prompt, bad sampler setting, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
