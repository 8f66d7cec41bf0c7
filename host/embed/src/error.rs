//! The embedder's error type.

use std::path::PathBuf;

/// Why an [`Embedder`](crate::Embedder) could not be loaded.
///
/// Every variant names the file involved and what was expected, so the message alone tells the
/// user what to fix (usually: run `scripts/setup.sh` to fetch the model files again).
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file could not be read (missing, unreadable).
    #[error(
        "cannot read {path}: {source} (the all-MiniLM-L6-v2 files are fetched by scripts/setup.sh)"
    )]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config.json, tokenizer.json, the safetensors header) is not valid JSON or
    /// does not have the expected fields.
    #[error("{path}: invalid JSON: {source} (expected {expected})")]
    Json {
        /// The file holding the JSON.
        path: PathBuf,
        /// What the file should contain.
        expected: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A file is readable and well-formed but its content is not what the embedder supports
    /// (wrong tensor shape or dtype, truncated data, unsupported tokenizer type, ...).
    #[error("{path}: {what}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and what was expected.
        what: String,
    },
}

impl EmbedError {
    /// Shorthand for [`EmbedError::Invalid`].
    pub(crate) fn invalid(path: &std::path::Path, what: impl Into<String>) -> Self {
        EmbedError::Invalid {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// Shorthand for [`EmbedError::Io`].
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EmbedError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
