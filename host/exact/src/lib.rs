//! Exact-arithmetic islands for Engram's `--exact` mode, and the dual-prime negacyclic NTT.
//!
//! Every function in this crate uses integer arithmetic only: no floating-point instruction and
//! no libm call runs inside it (floats appear only in its tests, as references). Its results are
//! therefore a pure function of its inputs — the same bits on every x86_64 or aarch64 machine,
//! for any thread count and with or without SIMD — which is what lets an exact-mode decode be
//! a pure function of (model file, token history, sampler seed).
//!
//! # Fixed-point formats
//!
//! | quantity | type | format | one ulp |
//! |---|---|---|---|
//! | activations, norm weights, scores, logits | `i32` | Q15.16 ([`ACT_FRAC_BITS`]) | `2^-16` |
//! | probabilities, gates (`σ`, `erf`, `e^x`) | `u32` | Q2.30 ([`PROB_FRAC_BITS`]) | `2^-30` |
//! | cos / sin | `i32` | Q1.30 ([`TRIG_FRAC_BITS`]) | `2^-30` |
//! | quantized dot-product accumulator | `i128` | Q87.40 ([`DOT_FRAC_BITS`]) | `2^-40` |
//! | quantized activations | [`Q8Block`] | 32 × `i8` · `2^(k−16)` | per block |
//! | weight scales (f16 in GGUF) | decoded | exactly `mant · 2^e` ([`fixed::f16_parts`]) | exact |
//! | RMSNorm epsilon | `u64` | Q32 ([`RMS_EPS_FRAC_BITS`]) | `2^-32` |
//! | RoPE frequencies | `u64` | Q62 | `2^-62` |
//!
//! Floats enter only through exact bit-level conversions ([`fixed::f32_to_fixed_i32`],
//! [`fixed::f16_to_fixed`], [`rms_eps_from_f32_bits`], [`RopeTable::from_f32_base`]) and leave
//! through [`fixed::act_to_f32_bits`]. Right shifts round to nearest, ties away from zero
//! ([`fixed::round_shift_i128`]); results that overflow their format saturate.
//!
//! # The islands and their error bounds
//!
//! Each bound is against the `f64` evaluation of the same function on the same fixed-point
//! inputs, and is checked by the crate's tests (exhaustively where the domain is small).
//!
//! | island | function | bound (tested) | measured worst | tested on |
//! |---|---|---|---|---|
//! | [`exp_neg_act`] | `e^x`, `x <= 0` | 1 ulp (Q30) | 0.90 ulp | exhaustive: all 4,194,305 inputs in `[-64, 0]` |
//! | [`rms_norm`] | RMSNorm | 1 ulp (Q16) | 0.57 ulp | 400 random rows, `n` 1..2048, magnitudes `2^-10..2^12` |
//! | [`softmax()`] | softmax | sum exactly `2^30`; 2 ulp (Q30) per entry, first maximal entry `n/2 + 2` ulp | 0.87 ulp; 0.34 of `n/2+2` | 600 random rows, `n` up to 4096 |
//! | [`silu`] | SiLU | 1 ulp (Q16) | 0.50 ulp | exhaustive over `[-16, 16]` (2,097,153 inputs) + 300,000 random `i32` |
//! | [`swiglu`] | SiLU(g)·u | 1 ulp (Q16) | 0.51 ulp | 100,000 random pairs in `[-20, 20]` |
//! | [`gelu`] | GELU (erf) | 2 ulp (Q16) | 0.51 ulp | as SiLU |
//! | [`activation::erf_q30`] | erf | `1.6e-7` (A&S 7.1.26) | `1.42e-7` | 200,000 points in `[0, 7]` |
//! | [`cordic::cos_sin_q62`] | cos, sin | 1 ulp (Q30) | 0.50 ulp | 400,000 angles in `[0, 2π)` |
//! | [`RopeTable`] | `cos/sin(p·base^(−2i/d))` | 1 ulp (Q30) | 0.50 ulp | bases 1e4, 1e5, 1e6; `d` 64, 128; `p < 32768` |
//! | [`rope_adjacent`], [`rope_neox`] | rotation | 0.5 ulp (Q16) given cos/sin | — | random heads |
//! | [`attend`] | attention, one head | `1 + 2^-13·max|v|` ulp (Q16) | 0.41 of the bound | 200 random heads, `d` 64, up to 512 positions |
//! | [`QuantMatrix`] | quantized dot product | exact (0) for the quantized operands | 0 | element-wise `i128` reference, all six formats; real GGUF rows |
//! | [`QuantMatrix::dequantize_row`] | dequantization | exact (Q24) | 0 vs gguf-py | real rows of SmolLM2 and Qwen2.5 (Q4_1, Q8_0, Q5_0, Q4_K, Q6_K) |
//!
//! `cargo test -p engram-exact -- --nocapture` prints the measured figures.
//!
//! The quantized dot products are exact, so scalar and AVX2 kernels, any chunking of a row and
//! any split of the rows over threads give the same bits (tested); see [`quant`] for the block
//! layouts and the argument. [`Kernel::Scalar`] or the environment variable
//! [`quant::SCALAR_ENV`] (`ENGRAM_EXACT_SCALAR=1`) forces the scalar path.
//!
//! # NTT
//!
//! [`ntt`] holds the dual-prime negacyclic NTT with CRT to `u64` for products in
//! `Z[x]/(x^n + 1)`, `n` a power of two up to 512, its exactness bound, and where Engram uses it.
//!
//! # Wiring into a forward pass
//!
//! Build the per-model constants once: [`RopeTable::from_f32_base`] from `rope.freq_base`,
//! [`rms_eps_from_f32_bits`] from the norm epsilon, a [`QuantMatrix`] per weight tensor (it
//! validates the scales), norm weights and biases converted with [`fixed::f32_to_fixed_i32`].
//! Then per token, with caller-owned buffers (nothing allocates):
//!
//! ```text
//! embedding   QuantMatrix::dequantize_row_act(token, scratch, x)
//! per layer   rms_norm(x, attn_norm, eps, h); quantize_act(h, hq)
//!             wq/wk/wv.matvec(hq, q/k/v, kernel)      (+ bias, as Q15.16 adds)
//!             table.cos_sin(pos, cos, sin); rope_adjacent (llama) / rope_neox (qwen2) per head
//!             attend(q_head, k_cache, v_cache, stride, attention_scale_q30(d), s, p, o) per head
//!             quantize_act(o, oq); wo.matvec(oq, t); x += t
//!             rms_norm(x, ffn_norm, eps, h); quantize_act(h, hq); gate/up.matvec
//!             swiglu(gate, up, g); quantize_act(g, gq); down.matvec(gq, t); x += t
//! logits      rms_norm; quantize_act; output.matvec -> Q15.16 logits (act_to_f32_bits)
//! ```
//!
//! Row ranges of a matrix can be handed to threads ([`QuantMatrix::matvec_rows`]): the bits do
//! not depend on the split. [`QuantMatrix::with_packed_scales`] decodes the block scales once
//! at load time for the eight-row tile kernels (AVX2, or AVX-512 VNNI where present): the same
//! bits, about the float kernel's speed.
//!
//! The engine does exactly this in `engram_engine::exact_ops::ExactOps` (an implementation of
//! its `Ops` seam), selected by `engram generate --exact` / `engram chat --exact`.

#![warn(missing_docs)]

pub mod activation;
pub mod attention;
pub mod cordic;
mod error;
pub mod exp;
pub mod fixed;
pub mod ntt;
pub mod quant;
pub mod rmsnorm;
pub mod rope;
pub mod softmax;

#[cfg(test)]
mod test_rng;

pub use activation::{gelu, gelu_inplace, sigmoid_q30, silu, silu_inplace, swiglu};
pub use attention::{attend, attention_scale_q30};
pub use error::ExactError;
pub use exp::exp_neg_act;
pub use fixed::{ACT_FRAC_BITS, ACT_ONE, DOT_FRAC_BITS, PROB_FRAC_BITS, PROB_ONE, TRIG_FRAC_BITS};
pub use ntt::{NttPlan, MODULUS, Q1, Q2};
pub use quant::{dot_to_act, quantize_act, Kernel, Q8Block, QuantMatrix, WeightFormat};
pub use rmsnorm::{rms_eps_from_f32_bits, rms_norm, RMS_EPS_FRAC_BITS};
pub use rope::{rope_adjacent, rope_neox, RopeTable};
pub use softmax::softmax;
