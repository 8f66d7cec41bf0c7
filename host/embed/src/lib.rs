//! Engram's sentence embedder: all-MiniLM-L6-v2 on the CPU.
//!
//! [`Embedder::load`] reads the three files of the model folder (`model.safetensors`,
//! `config.json`, `tokenizer.json`) once; [`Embedder::embed`] and [`Embedder::embed_batch`]
//! then turn text into [`DIM`]-wide, L2-normalised vectors, exactly as sentence-transformers
//! does: BERT WordPiece tokenisation (`[CLS] … [SEP]`, at most [`MAX_TOKENS`] ids — longer
//! text is truncated), the 6-layer BERT encoder, mean pooling over all tokens, L2
//! normalisation. Compare vectors with [`cosine`] (a dot product, since they are unit length).
//!
//! ```no_run
//! use engram_embed::{cosine, default_model_dir, Embedder};
//! let embedder = Embedder::load(&default_model_dir())?;
//! let a = embedder.embed("The cat sits on the mat.");
//! let b = embedder.embed("A kitten is resting on a rug.");
//! println!("similarity {}", cosine(&a, &b));
//! # Ok::<(), engram_embed::EmbedError>(())
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod kernels;
mod model;
mod model_dir;
mod safetensors;
mod tokenizer;

pub use config::BertConfig;
pub use error::EmbedError;
pub use kernels::linear::Kernel;
pub use model_dir::{default_model_dir, MODEL_DIR_NAME};
pub use tokenizer::Tokenizer;

use model::Bert;
use std::path::Path;

/// Width of an embedding.
pub const DIM: usize = 384;

/// The most token ids one text is embedded from, `[CLS]` and `[SEP]` included (the model's
/// sentence-transformers `max_seq_length`); the word pieces past `MAX_TOKENS - 2` are dropped.
pub const MAX_TOKENS: usize = 256;

/// Texts are run through the encoder in groups of at most this many tokens, which bounds the
/// working memory of [`Embedder::embed_batch`] (about 20 KiB per token).
const BATCH_TOKENS: usize = 2048;

/// How an [`Embedder`] computes; every setting changes speed only, never the meaning of the
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Worker threads for one call: `0` means one per available core, `1` runs on the caller's
    /// thread only. Any count gives bit-identical vectors.
    pub threads: usize,
    /// Use the CPU's SIMD kernel (AVX2/FMA) when present. `false` forces the portable kernel,
    /// whose vectors differ from the SIMD ones only by float rounding (cosine > 0.99999).
    pub simd: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            threads: 0,
            simd: true,
        }
    }
}

/// A loaded sentence embedder. Cheap to share: `Send + Sync`, every method takes `&self`.
pub struct Embedder {
    tokenizer: Tokenizer,
    bert: Bert,
    kernel: Kernel,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("layers", &self.config().num_hidden_layers)
            .field("dim", &self.config().hidden_size)
            .field("kernel", &self.kernel)
            .field(
                "threads",
                &self.pool.as_ref().map_or(1, |p| p.current_num_threads()),
            )
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model in `dir` (a folder holding `model.safetensors`, `config.json` and
    /// `tokenizer.json`) with the default [`EmbedOptions`].
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        Self::load_with(dir, &EmbedOptions::default())
    }

    /// Loads the model in `dir` with explicit options.
    pub fn load_with(dir: &Path, options: &EmbedOptions) -> Result<Embedder, EmbedError> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        if config.hidden_size != DIM {
            return Err(EmbedError::invalid(
                &dir.join("config.json"),
                format!(
                    "hidden_size {}; expected {DIM} (all-MiniLM-L6-v2)",
                    config.hidden_size
                ),
            ));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let max_len = MAX_TOKENS.min(config.max_position_embeddings);
        let tokenizer = Tokenizer::load(&tokenizer_path, max_len)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(EmbedError::invalid(
                &tokenizer_path,
                format!(
                    "vocabulary has {} ids but config.json's vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            ));
        }
        let weights = safetensors::SafeTensors::open(&dir.join("model.safetensors"))?;
        let bert = Bert::load(config, &weights)?;
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("engram-embed-{i}"))
                .build()
                .map_err(|e| EmbedError::Invalid {
                    path: dir.to_path_buf(),
                    what: format!("cannot start {threads} embedder threads: {e}"),
                })?;
            Some(pool)
        } else {
            None
        };
        let kernel = if options.simd {
            Kernel::detect()
        } else {
            Kernel::Portable
        };
        tracing::debug!(?kernel, threads, dir = %dir.display(), "embedder loaded");
        Ok(Embedder {
            tokenizer,
            bert,
            kernel,
            pool,
        })
    }

    /// The embedding of `text`: [`DIM`] floats of unit length (an empty text embeds
    /// `[CLS] [SEP]`).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        self.embed_ids(&[self.tokenizer.encode(text)])
            .pop()
            .expect("one vector per text")
    }

    /// The embeddings of `texts`, in order; each equals (bit for bit) `self.embed(text)`, but
    /// a batch is faster: the dense layers run over all its tokens at once.
    pub fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let seqs: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < seqs.len() && (end == start || tokens + seqs[end].len() <= BATCH_TOKENS) {
                tokens += seqs[end].len();
                end += 1;
            }
            out.extend(self.embed_ids(&seqs[start..end]));
            start = end;
        }
        out
    }

    /// The number of token ids `text` encodes to before truncation, `[CLS]` and `[SEP]`
    /// included. Above [`MAX_TOKENS`], only the first `MAX_TOKENS` are embedded.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    /// The token ids `text` is embedded from (truncated to [`MAX_TOKENS`]).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &BertConfig {
        self.bert.config()
    }

    /// The dense-layer kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Runs the encoder over already-tokenised sequences (each non-empty, ids from this
    /// embedder's tokenizer).
    fn embed_ids(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        match &self.pool {
            Some(pool) => pool.install(|| self.bert.embed(seqs, self.kernel, true)),
            None => self.bert.embed(seqs, self.kernel, false),
        }
    }
}

/// Cosine similarity of two vectors (`0` when either is all zeros). For the unit vectors of
/// [`Embedder::embed`] this is their dot product.
///
/// # Panics
/// If the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa.sqrt() * bb.sqrt())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-7);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn embedder_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Embedder>();
    }
}
