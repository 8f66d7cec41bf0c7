//! Comparison against llama.cpp reference outputs (`tests/fixtures/ref-*.json`): the figures
//! of issue 3's correctness gate, computed for any file of that layout.

use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::sampler::argmax;
use crate::session::{Session, SessionOptions};
use crate::template::ChatMessage;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct RefFile {
    #[serde(default)]
    model: String,
    #[serde(default)]
    sha256: String,
    text: String,
    tokens: Vec<u32>,
    top5_next: Vec<Vec<(u32, f32)>>,
    chat: Vec<RefChat>,
}

#[derive(Debug, Deserialize)]
struct RefChat {
    messages: Vec<ChatMessage>,
    rendered: String,
    prompt_tokens: Vec<u32>,
    greedy_tokens: Vec<u32>,
    margins: Vec<f32>,
}

/// Thresholds of the gate.
pub mod gate {
    /// Every reference top-5 logit must be within this of ours.
    pub const MAX_ABS: f32 = 1.0;
    /// Mean absolute difference over all reference top-5 logits.
    pub const MEAN_ABS: f32 = 0.3;
    /// Positions whose reference margin exceeds this count for the top-1 agreement.
    pub const MARGIN: f32 = 1.0;
    /// Required top-1 agreement at confident positions.
    pub const TOP1: f64 = 0.99;
    /// Fraction of prompts whose greedy continuation must match up to the first tie.
    pub const GREEDY: f64 = 0.9;
}

/// The figures of one reference comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceReport {
    /// Model name recorded in the reference.
    pub reference_model: String,
    /// sha256 recorded in the reference.
    pub reference_sha256: String,
    /// Reference text tokens.
    pub n_tokens: usize,
    /// First index where our tokenization differs (None = identical).
    pub token_mismatch: Option<usize>,
    /// Chats whose template rendering equals the reference.
    pub rendered_ok: usize,
    /// Chats whose prompt ids equal the reference.
    pub prompt_ids_ok: usize,
    /// Number of chats.
    pub n_chats: usize,
    /// Largest |ours − reference| over every reference top-5 logit.
    pub logit_max_abs: f32,
    /// Mean |ours − reference| over every reference top-5 logit.
    pub logit_mean_abs: f32,
    /// Positions whose reference margin exceeds [`gate::MARGIN`].
    pub confident_positions: usize,
    /// Of those, positions where our argmax equals the reference's.
    pub top1_agree: usize,
    /// Chats whose greedy continuation matches up to the first step with margin < 1.
    pub greedy_ok: usize,
    /// Indices of chats whose greedy continuation did not match.
    pub greedy_failed: Vec<usize>,
}

impl ReferenceReport {
    /// Top-1 agreement at confident positions (1.0 when there are none).
    pub fn top1_rate(&self) -> f64 {
        if self.confident_positions == 0 {
            1.0
        } else {
            self.top1_agree as f64 / self.confident_positions as f64
        }
    }

    /// Every gate line as (description, passed).
    pub fn checks(&self) -> Vec<(String, bool)> {
        vec![
            (
                format!(
                    "(a) tokenization of the text: {} tokens, {}",
                    self.n_tokens,
                    match self.token_mismatch {
                        None => "identical".to_string(),
                        Some(i) => format!("first difference at index {i}"),
                    }
                ),
                self.token_mismatch.is_none(),
            ),
            (
                format!(
                    "(a) chat template rendering equal: {}/{}",
                    self.rendered_ok, self.n_chats
                ),
                self.rendered_ok == self.n_chats,
            ),
            (
                format!("(a) chat prompt ids equal: {}/{}", self.prompt_ids_ok, self.n_chats),
                self.prompt_ids_ok == self.n_chats,
            ),
            (
                format!(
                    "(b) max |logit diff| over reference top-5: {:.4} (limit {})",
                    self.logit_max_abs,
                    gate::MAX_ABS
                ),
                self.logit_max_abs <= gate::MAX_ABS,
            ),
            (
                format!(
                    "(b) mean |logit diff| over reference top-5: {:.4} (limit {})",
                    self.logit_mean_abs,
                    gate::MEAN_ABS
                ),
                self.logit_mean_abs <= gate::MEAN_ABS,
            ),
            (
                format!(
                    "(b) top-1 agreement where reference margin > {}: {}/{} = {:.2}% (need {:.0}%)",
                    gate::MARGIN,
                    self.top1_agree,
                    self.confident_positions,
                    100.0 * self.top1_rate(),
                    100.0 * gate::TOP1
                ),
                self.top1_rate() >= gate::TOP1,
            ),
            (
                format!(
                    "(c) greedy continuation equal up to the first margin < {}: {}/{} prompts (need {:.0}%){}",
                    gate::MARGIN,
                    self.greedy_ok,
                    self.n_chats,
                    100.0 * gate::GREEDY,
                    if self.greedy_failed.is_empty() {
                        String::new()
                    } else {
                        format!(", failed: {:?}", self.greedy_failed)
                    }
                ),
                self.greedy_ok as f64 >= gate::GREEDY * self.n_chats as f64,
            ),
        ]
    }

    /// True when every gate line holds.
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|(_, ok)| *ok)
    }
}

/// Runs the whole comparison of `model` against the reference JSON text `json`.
pub fn check_reference(model: &Arc<Model>, json: &str) -> Result<ReferenceReport> {
    let r: RefFile =
        serde_json::from_str(json).map_err(|e| EngineError::InvalidArgument(format!("reference JSON: {e}")))?;
    let tok = model.tokenizer();
    let vocab = model.config.vocab;

    // (a) tokenization.
    let ours = tok.encode(&r.text, false);
    let ours = &ours[..ours.len().min(r.tokens.len())];
    let token_mismatch = (0..r.tokens.len()).find(|&i| ours.get(i) != Some(&r.tokens[i]));

    // (b) teacher-forced logits over the reference tokens, one batched prefill.
    if r.top5_next.len() != r.tokens.len() {
        return Err(EngineError::InvalidArgument(
            "reference top5_next and tokens differ in length".into(),
        ));
    }
    let mut s = Session::new(
        model,
        SessionOptions {
            n_ctx: r.tokens.len().max(1),
        },
    );
    let logits = s.prefill_all(&r.tokens)?.to_vec();
    let (mut max_abs, mut sum_abs, mut count) = (0f32, 0f64, 0usize);
    let (mut confident, mut agree) = (0usize, 0usize);
    for (i, top) in r.top5_next.iter().enumerate() {
        let row = &logits[i * vocab..(i + 1) * vocab];
        for &(id, l) in top {
            let d = (row.get(id as usize).copied().unwrap_or(f32::INFINITY) - l).abs();
            max_abs = max_abs.max(d);
            sum_abs += d as f64;
            count += 1;
        }
        if top.len() >= 2 && top[0].1 - top[1].1 > gate::MARGIN {
            confident += 1;
            if argmax(row) == top[0].0 {
                agree += 1;
            }
        }
    }

    // (a) templates and (c) greedy continuations.
    let mut rendered_ok = 0;
    let mut prompt_ids_ok = 0;
    let mut greedy_ok = 0;
    let mut greedy_failed = Vec::new();
    for (ci, chat) in r.chat.iter().enumerate() {
        if let Some(t) = model.chat_template() {
            if t.render(&chat.messages, true)? == chat.rendered {
                rendered_ok += 1;
            }
        }
        if tok.encode(&chat.rendered, true) == chat.prompt_tokens {
            prompt_ids_ok += 1;
        }
        // Steps to compare: up to (not including) the first step whose margin is below 1.
        let first_tie = chat
            .margins
            .iter()
            .position(|&m| m < gate::MARGIN)
            .unwrap_or(chat.margins.len());
        let mut sess = Session::new(
            model,
            SessionOptions {
                n_ctx: chat.prompt_tokens.len() + chat.greedy_tokens.len() + 2,
            },
        );
        let mut logits = sess.prefill(&chat.prompt_tokens)?.to_vec();
        let mut ok = true;
        for step in 0..first_tie {
            let ours = argmax(&logits);
            match chat.greedy_tokens.get(step) {
                Some(&want) => {
                    if ours != want {
                        ok = false;
                        break;
                    }
                    if step + 1 < first_tie {
                        logits.copy_from_slice(sess.decode_step(ours)?);
                    }
                }
                None => {
                    // The reference stopped here with an end token.
                    if !tok.is_end_of_generation(ours) {
                        ok = false;
                    }
                    break;
                }
            }
        }
        if ok {
            greedy_ok += 1;
        } else {
            greedy_failed.push(ci);
        }
    }

    Ok(ReferenceReport {
        reference_model: r.model,
        reference_sha256: r.sha256,
        n_tokens: r.tokens.len(),
        token_mismatch,
        rendered_ok,
        prompt_ids_ok,
        n_chats: r.chat.len(),
        logit_max_abs: max_abs,
        logit_mean_abs: if count == 0 {
            0.0
        } else {
            (sum_abs / count as f64) as f32
        },
        confident_positions: confident,
        top1_agree: agree,
        greedy_ok,
        greedy_failed,
    })
}
