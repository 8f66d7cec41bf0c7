//! The model's config.json (Hugging Face `BertConfig`), read and validated.

use crate::error::EmbedError;
use serde::Deserialize;
use std::path::Path;

/// The BERT hyper-parameters the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Width of the hidden state (384 for MiniLM-L6).
    pub hidden_size: usize,
    /// Number of transformer layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (12).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (1536).
    pub intermediate_size: usize,
    /// Number of learned positions (512).
    pub max_position_embeddings: usize,
    /// Number of token types (2).
    pub type_vocab_size: usize,
    /// Vocabulary size (30522).
    pub vocab_size: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only `gelu` (the exact, erf-based GELU) is supported.
    pub hidden_act: String,
    /// Position encoding kind; only `absolute` is supported.
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".to_string()
}

impl BertConfig {
    /// Reads and validates config.json at `path`.
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let text = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let config: BertConfig =
            serde_json::from_slice(&text).map_err(|source| EmbedError::Json {
                path: path.to_path_buf(),
                expected: "a BERT config.json (hidden_size, num_hidden_layers, ...)",
                source,
            })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), EmbedError> {
        let bad = |what: String| Err(EmbedError::invalid(path, what));
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act {:?}; only \"gelu\" is supported",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type {:?}; only \"absolute\" is supported",
                self.position_embedding_type
            ));
        }
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_hidden_layers == 0
            || self.intermediate_size == 0
            || self.vocab_size == 0
            || self.type_vocab_size == 0
            || self.max_position_embeddings < 2
        {
            return bad("layer count, sizes and vocabulary must all be positive".to_string());
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return bad(format!(
                "layer_norm_eps {} is not a finite non-negative number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
