//! The BERT encoder (weights and forward pass) and sentence pooling.

use crate::config::BertConfig;
use crate::error::EmbedError;
use crate::kernels::attention::attention;
use crate::kernels::linear::{Kernel, Linear};
use crate::kernels::ops::{gelu, layer_norm};
use crate::safetensors::SafeTensors;

/// A LayerNorm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One transformer layer (post-LayerNorm, as BERT).
struct Layer {
    /// Query, key and value projections stacked into one `d → 3d` layer.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: Norm,
}

/// The BERT encoder of a sentence-transformers model.
pub(crate) struct Bert {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0's embedding (single sentences only use type 0).
    token_type0: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    eps: f32,
}

impl Bert {
    /// Reads every tensor of the encoder from `st`, checking names and shapes.
    pub(crate) fn load(config: BertConfig, st: &SafeTensors) -> Result<Bert, EmbedError> {
        let d = config.hidden_size;
        let ff = config.intermediate_size;
        let norm = |prefix: &str| -> Result<Norm, EmbedError> {
            Ok(Norm {
                gamma: st.f32_tensor(&format!("{prefix}.weight"), &[d])?,
                beta: st.f32_tensor(&format!("{prefix}.bias"), &[d])?,
            })
        };
        let dense =
            |prefix: &str, out: usize, inp: usize| -> Result<(Vec<f32>, Vec<f32>), EmbedError> {
                Ok((
                    st.f32_tensor(&format!("{prefix}.weight"), &[out, inp])?,
                    st.f32_tensor(&format!("{prefix}.bias"), &[out])?,
                ))
            };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let (wq, bq) = dense(&format!("{p}.attention.self.query"), d, d)?;
            let (wk, bk) = dense(&format!("{p}.attention.self.key"), d, d)?;
            let (wv, bv) = dense(&format!("{p}.attention.self.value"), d, d)?;
            let (wo, bo) = dense(&format!("{p}.attention.output.dense"), d, d)?;
            let (wi, bi) = dense(&format!("{p}.intermediate.dense"), ff, d)?;
            let (wf, bf) = dense(&format!("{p}.output.dense"), d, ff)?;
            layers.push(Layer {
                qkv: Linear::concat(&[(&wq, &bq, d), (&wk, &bk, d), (&wv, &bv, d)], d),
                attn_out: Linear::new(&wo, &bo, d, d),
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                ffn_in: Linear::new(&wi, &bi, ff, d),
                ffn_out: Linear::new(&wf, &bf, d, ff),
                ffn_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = st.f32_tensor(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, d],
        )?;
        Ok(Bert {
            word: st.f32_tensor("embeddings.word_embeddings.weight", &[config.vocab_size, d])?,
            position: st.f32_tensor(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, d],
            )?,
            token_type0: token_types[..d].to_vec(),
            embed_norm: norm("embeddings.LayerNorm")?,
            layers,
            eps: config.layer_norm_eps as f32,
            config,
        })
    }

    /// The model's hyper-parameters.
    pub(crate) fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Runs the encoder over the token sequences `seqs` together and returns, per sequence,
    /// the mean of its final hidden states (all tokens, `[CLS]` and `[SEP]` included), L2
    /// normalised.
    ///
    /// Every id must be below the vocabulary size and every sequence non-empty and at most
    /// `max_position_embeddings` long; the tokenizer guarantees both (checked at load).
    pub(crate) fn embed(&self, seqs: &[Vec<u32>], kernel: Kernel, parallel: bool) -> Vec<Vec<f32>> {
        let d = self.config.hidden_size;
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let total: usize = lens.iter().sum();

        // Embeddings: word + position + token type 0, then LayerNorm.
        let mut x = vec![0.0f32; total * d];
        let mut rows = x.chunks_exact_mut(d);
        for seq in seqs {
            for (pos, &id) in seq.iter().enumerate() {
                let row = rows.next().expect("one row per token");
                let w = &self.word[id as usize * d..][..d];
                let p = &self.position[pos * d..][..d];
                for i in 0..d {
                    row[i] = w[i] + p[i] + self.token_type0[i];
                }
            }
        }
        layer_norm(
            kernel,
            &mut x,
            &self.embed_norm.gamma,
            &self.embed_norm.beta,
            self.eps,
        );

        let heads = self.config.num_attention_heads;
        let mut qkv = vec![0.0f32; total * 3 * d];
        let mut ctx = vec![0.0f32; total * d];
        let mut h = vec![0.0f32; total * d];
        let mut ff = vec![0.0f32; total * self.config.intermediate_size];
        for layer in &self.layers {
            layer.qkv.forward(&x, &mut qkv, kernel, parallel);
            attention(
                kernel,
                &qkv,
                &lens,
                heads,
                self.config.head_dim(),
                &mut ctx,
                parallel,
            );
            layer.attn_out.forward(&ctx, &mut h, kernel, parallel);
            add_in_place(&mut h, &x);
            layer_norm(
                kernel,
                &mut h,
                &layer.attn_norm.gamma,
                &layer.attn_norm.beta,
                self.eps,
            );
            layer.ffn_in.forward(&h, &mut ff, kernel, parallel);
            gelu(kernel, &mut ff);
            layer.ffn_out.forward(&ff, &mut x, kernel, parallel);
            add_in_place(&mut x, &h);
            layer_norm(
                kernel,
                &mut x,
                &layer.ffn_norm.gamma,
                &layer.ffn_norm.beta,
                self.eps,
            );
        }

        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        for &len in &lens {
            let mut pooled = vec![0.0f32; d];
            for row in x[start * d..(start + len) * d].chunks_exact(d) {
                add_in_place(&mut pooled, row);
            }
            let inv_len = 1.0 / len as f32;
            pooled.iter_mut().for_each(|v| *v *= inv_len);
            l2_normalize(&mut pooled);
            out.push(pooled);
            start += len;
        }
        out
    }
}

/// `a += b` element-wise.
fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Scales `v` to unit Euclidean length (a zero vector stays zero), as
/// `torch.nn.functional.normalize` with its `eps = 1e-12`.
fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    let inv = (1.0 / norm.max(1e-12)) as f32;
    v.iter_mut().for_each(|x| *x *= inv);
}
