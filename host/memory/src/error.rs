//! The one error type of the memory store.

use std::path::PathBuf;

/// Everything that can go wrong in the memory store, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The embedded database (sled) failed.
    #[error("memory store database error: {0} (is another process holding the store open?)")]
    Db(#[from] sled::Error),
    /// A file of the store could not be read or written.
    #[error("memory store I/O error on {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record in the store does not decode or does not authenticate.
    #[error(
        "memory store is corrupt: {0}; run `engram memory verify` to locate the first bad line"
    )]
    Corrupt(String),
    /// The caller supplied something the store cannot accept.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Nothing matched the request.
    #[error("not found: {0}")]
    NotFound(String),
    /// An `.atom` file was refused on import.
    #[error("refusing .atom file {path}: {reason}")]
    AtomRefused {
        /// The file that was refused.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The embedder returned vectors of the wrong shape.
    #[error("embedder error: {0}")]
    Embedding(String),
    /// The operating system's random source failed.
    #[error("cannot read the operating system's random source: {0}")]
    Random(String),
}

impl MemoryError {
    /// Wrap an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the memory store.
pub type Result<T, E = MemoryError> = std::result::Result<T, E>;
