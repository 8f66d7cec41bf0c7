//! The model definition shared by the llama and qwen2 families: hyper-parameters read from
//! GGUF metadata, and weights kept in their quantized form inside the mapped file.

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::ops::{CpuOps, Ops};
use crate::quant::{cast_blocks, dequantize_row, GgmlType};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use std::path::Path;
use std::sync::Arc;

/// Supported architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama family (SmolLM2, TinyLlama, Llama 2/3): no biases, RoPE on adjacent pairs.
    Llama,
    /// Qwen2 family (Qwen2, Qwen2.5): q/k/v biases, RoPE on halves (NeoX layout).
    Qwen2,
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(x[2i], x[2i+1])` — llama GGUFs store Q/K permuted for this.
    Adjacent,
    /// Pairs `(x[i], x[i + d/2])` — the NeoX layout used by qwen2.
    Halves,
}

/// Hyper-parameters of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Hidden size.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads (queries).
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Feed-forward hidden size.
    pub n_ff: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length the model was trained for.
    pub ctx_train: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// RoPE pairing.
    pub rope_layout: RopeLayout,
    /// RMSNorm epsilon.
    pub eps: f32,
}

/// A weight matrix of `rows × cols` (each row `cols` elements) in its stored type.
#[derive(Clone)]
pub struct Weight {
    file: Arc<GgufFile>,
    offset: usize,
    size: usize,
    /// Element type.
    pub ty: GgmlType,
    /// Output dimension (number of rows).
    pub rows: usize,
    /// Input dimension (row length).
    pub cols: usize,
}

impl std::fmt::Debug for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weight({:?}, {}x{})", self.ty, self.rows, self.cols)
    }
}

impl Weight {
    /// All bytes of the matrix.
    pub fn bytes(&self) -> &[u8] {
        &self.file.bytes()[self.offset..self.offset + self.size]
    }
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }
    /// Dequantizes row `r` into `out` (`cols` elements).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        dequantize_row(self.ty, &self.bytes()[r * rb..(r + 1) * rb], out);
    }
}

/// The weights of one transformer block.
#[derive(Debug)]
pub struct Layer {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection.
    pub wq: Weight,
    /// Key projection.
    pub wk: Weight,
    /// Value projection.
    pub wv: Weight,
    /// Output projection.
    pub wo: Weight,
    /// Query bias (qwen2).
    pub bq: Option<Vec<f32>>,
    /// Key bias (qwen2).
    pub bk: Option<Vec<f32>>,
    /// Value bias (qwen2).
    pub bv: Option<Vec<f32>>,
    /// RMSNorm weight before the feed-forward.
    pub ffn_norm: Vec<f32>,
    /// Gate projection (SiLU branch).
    pub w_gate: Weight,
    /// Up projection.
    pub w_up: Weight,
    /// Down projection.
    pub w_down: Weight,
}

/// A loaded model: configuration, weights, tokenizer and chat template.
pub struct Model {
    /// Hyper-parameters.
    pub config: Config,
    /// Token embedding table (`vocab × n_embd`).
    pub token_embd: Weight,
    /// Transformer blocks.
    pub layers: Vec<Layer>,
    /// Final RMSNorm weight.
    pub output_norm: Vec<f32>,
    /// Output projection (`vocab × n_embd`); the embedding table when tied.
    pub output: Weight,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    file: Arc<GgufFile>,
    fingerprint: [u8; 32],
    ops: Arc<dyn Ops>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.file.path())
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// Loads a GGUF model (llama or qwen2 architecture) from `path`, computing with the float
    /// CPU operators on all cores.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(path, Arc::new(CpuOps::new(0)))
    }

    /// Loads a model that computes with `ops` (e.g. `CpuOps::new(threads)`, or an exact or
    /// GPU implementation of [`Ops`]).
    pub fn load_with(path: impl AsRef<Path>, ops: Arc<dyn Ops>) -> Result<Model> {
        let file = Arc::new(GgufFile::open(path.as_ref())?);
        Self::from_gguf(file, ops)
    }

    /// Builds a model from an already parsed GGUF file.
    pub fn from_gguf(file: Arc<GgufFile>, ops: Arc<dyn Ops>) -> Result<Model> {
        let f = &*file;
        let arch_name = f.get_str("general.architecture")?.to_string();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            _ => {
                return Err(EngineError::UnsupportedArch {
                    path: f.path().to_path_buf(),
                    arch: arch_name,
                })
            }
        };
        let a = &arch_name;
        let n_embd = f.get_u64(&format!("{a}.embedding_length"))? as usize;
        let n_layer = f.get_u64(&format!("{a}.block_count"))? as usize;
        let n_head = f.get_u64(&format!("{a}.attention.head_count"))? as usize;
        let n_head_kv = match f.metadata.get(&format!("{a}.attention.head_count_kv")) {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| f.meta_err(&format!("{a}.attention.head_count_kv"), "expected an integer"))?
                as usize,
            None => n_head,
        };
        let n_ff = f.get_u64(&format!("{a}.feed_forward_length"))? as usize;
        let ctx_train = f.get_u64(&format!("{a}.context_length"))? as usize;
        let eps = f.get_f64(&format!("{a}.attention.layer_norm_rms_epsilon"))? as f32;
        let rope_base = match f.metadata.get(&format!("{a}.rope.freq_base")) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| f.meta_err(&format!("{a}.rope.freq_base"), "expected a number"))?
                as f32,
            None => 10000.0,
        };
        if n_head == 0
            || n_head_kv == 0
            || !n_embd.is_multiple_of(n_head)
            || !n_head.is_multiple_of(n_head_kv)
            || n_layer == 0
        {
            return Err(f.meta_err(
                &format!("{a}.attention.head_count"),
                &format!("inconsistent shape: n_embd {n_embd}, heads {n_head}, kv heads {n_head_kv}, layers {n_layer}"),
            ));
        }
        let head_dim = n_embd / n_head;
        if !head_dim.is_multiple_of(2) {
            return Err(f.meta_err(&format!("{a}.embedding_length"), "head dimension must be even for RoPE"));
        }
        let n_kv = n_head_kv * head_dim;

        let weight = |name: &str, cols: usize, rows: usize| -> Result<Weight> {
            let t = f.tensor(name).ok_or_else(|| f.tensor_err(name, "missing"))?;
            if t.dims.len() != 2 || t.dims[0] as usize != cols || t.dims[1] as usize != rows {
                return Err(f.tensor_err(name, format!("shape {:?}, expected [{cols}, {rows}]", t.dims)));
            }
            let data = f.tensor_data(t);
            if !(data.as_ptr() as usize).is_multiple_of(4) {
                return Err(f.tensor_err(name, "data is not 4-byte aligned in memory"));
            }
            Ok(Weight {
                file: file.clone(),
                offset: t.offset,
                size: t.size,
                ty: t.ggml_type,
                rows,
                cols,
            })
        };
        let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
            let t = f.tensor(name).ok_or_else(|| f.tensor_err(name, "missing"))?;
            if t.n_elements() as usize != len {
                return Err(f.tensor_err(name, format!("shape {:?}, expected [{len}]", t.dims)));
            }
            let mut v = vec![0f32; len];
            let data = f.tensor_data(t);
            if cast_blocks::<u32>(data).is_none() && t.ggml_type != GgmlType::F16 {
                return Err(f.tensor_err(name, "data is misaligned"));
            }
            dequantize_row(t.ggml_type, data, &mut v);
            Ok(v)
        };
        let optional_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            if f.tensor(name).is_some() {
                vector(name, len).map(Some)
            } else {
                Ok(None)
            }
        };

        let embd_t = f
            .tensor("token_embd.weight")
            .ok_or_else(|| f.tensor_err("token_embd.weight", "missing"))?;
        let vocab = embd_t.dims.get(1).copied().unwrap_or(0) as usize;
        let token_embd = weight("token_embd.weight", n_embd, vocab)?;
        let output = if f.tensor("output.weight").is_some() {
            weight("output.weight", n_embd, vocab)?
        } else {
            token_embd.clone()
        };
        let output_norm = vector("output_norm.weight", n_embd)?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: vector(&p("attn_norm.weight"), n_embd)?,
                wq: weight(&p("attn_q.weight"), n_embd, n_embd)?,
                wk: weight(&p("attn_k.weight"), n_embd, n_kv)?,
                wv: weight(&p("attn_v.weight"), n_embd, n_kv)?,
                wo: weight(&p("attn_output.weight"), n_embd, n_embd)?,
                bq: optional_vector(&p("attn_q.bias"), n_embd)?,
                bk: optional_vector(&p("attn_k.bias"), n_kv)?,
                bv: optional_vector(&p("attn_v.bias"), n_kv)?,
                ffn_norm: vector(&p("ffn_norm.weight"), n_embd)?,
                w_gate: weight(&p("ffn_gate.weight"), n_embd, n_ff)?,
                w_up: weight(&p("ffn_up.weight"), n_embd, n_ff)?,
                w_down: weight(&p("ffn_down.weight"), n_ff, n_embd)?,
            });
        }
        let config = Config {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            vocab,
            ctx_train,
            rope_base,
            rope_layout: match arch {
                Arch::Llama => RopeLayout::Adjacent,
                Arch::Qwen2 => RopeLayout::Halves,
            },
            eps,
        };
        let tokenizer = Tokenizer::from_gguf(f)?;
        if tokenizer.vocab_size() != vocab {
            return Err(f.meta_err(
                "tokenizer.ggml.tokens",
                &format!(
                    "{} tokens, but token_embd.weight has {vocab} rows",
                    tokenizer.vocab_size()
                ),
            ));
        }
        let template = match f.metadata.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
            Some(src) => Some(ChatTemplate::new(src, &tokenizer)?),
            None => None,
        };
        let fingerprint = fingerprint(f);
        Ok(Model {
            config,
            token_embd,
            layers,
            output_norm,
            output,
            tokenizer,
            template,
            file,
            fingerprint,
            ops,
        })
    }

    /// The tokenizer stored in the model file.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template stored in the model file, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// The operators this model computes with.
    pub fn ops(&self) -> &dyn Ops {
        &*self.ops
    }

    /// The parsed GGUF file.
    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    /// A SHA-256 over the file's header and tensor directory: identifies the model in session
    /// snapshots without hashing the whole weights.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Bytes of weights read per decoded token (every matrix once, plus one embedding row).
    pub fn bytes_per_token(&self) -> usize {
        let mut b = self.output.bytes().len() + self.token_embd.row_bytes();
        for l in &self.layers {
            for w in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                b += w.bytes().len();
            }
        }
        b
    }
}

fn fingerprint(f: &GgufFile) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let data_start = f.tensors.iter().map(|t| t.offset).min().unwrap_or(f.bytes().len());
    h.update(&f.bytes()[..data_start.min(f.bytes().len())]);
    h.update((f.bytes().len() as u64).to_le_bytes());
    h.finalize().into()
}
