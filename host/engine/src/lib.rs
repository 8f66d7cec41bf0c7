//! Engram's CPU inference engine.
//!
//! - [`gguf`]: the GGUF container parser (memory-mapped, bounds-checked).
//! - [`quant`] and [`kernels`]: quantization formats and the dot-product kernels (scalar
//!   reference plus AVX2, chosen at run time).
//! - [`tokenizer`] and [`template`]: byte-level BPE and the Jinja chat template from the GGUF.
//! - [`model`], [`ops`] and [`forward`]: one llama/qwen2 model definition over a numeric seam.
//! - [`exact_ops`]: the `--exact` operators (integer islands, bit-identical across threads and
//!   SIMD widths) and the logits digest.
//! - [`session`], [`sampler`] and [`generate`]: KV-cached sessions, sampling, streaming;
//!   [`anchor`]: value anchoring (a begun memory value is continued exactly).
//! - [`reference`]: the comparison against llama.cpp reference outputs.
//!
//! ```no_run
//! use engram_engine::{Model, Session, SessionOptions, GenerateOptions, generate};
//! use std::sync::Arc;
//! let model = Arc::new(Model::load("models/SmolLM2-135M-Instruct.Q4_1.gguf")?);
//! let prompt = model.tokenizer().encode("Hello", false);
//! let mut session = Session::new(&model, SessionOptions::default());
//! let out = generate(&mut session, &prompt, &GenerateOptions::default(), |t| { print!("{t}"); true })?;
//! # Ok::<(), engram_engine::EngineError>(())
//! ```

#![warn(missing_docs)]

pub mod anchor;
pub mod error;
pub mod exact_ops;
pub mod forward;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod reference;
pub mod sampler;
pub mod session;
pub mod template;
pub mod tokenizer;

pub use error::{EngineError, Result};
pub use exact_ops::{ExactOps, LogitsDigest};
pub use generate::{generate, GenerateOptions, Generation, StopReason};
pub use model::{Arch, Config, Model};
pub use ops::{CpuOps, Ops};
pub use sampler::{Sampler, SamplerConfig};
pub use session::{Session, SessionOptions};
pub use template::{ChatMessage, ChatTemplate};
pub use tokenizer::{StreamDecoder, Tokenizer};
