//! Generation loop: sample, stream text, stop at EOS, a stop string or a token budget.

use crate::anchor::ValueAnchors;
use crate::error::Result;
use crate::sampler::{Sampler, SamplerConfig};
use crate::session::Session;
use crate::tokenizer::StreamDecoder;
use std::time::{Duration, Instant};

/// Settings of one generation.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Strings that end the generation (not included in the output).
    pub stop: Vec<String>,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Values the text continues exactly once it has begun one, or said the words that lead
    /// into it ([`crate::anchor`]); empty: off, generation as without it.
    pub anchors: Vec<crate::anchor::Anchor>,
    /// The answer's first words, already in the session before the generation (an opening
    /// the caller wrote: "Your job"): anchoring reads the answer as they plus the generated
    /// text, so a value's lead that spans both ("job" + " is") is found. Nothing else reads it.
    pub answer_start: String,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            stop: Vec::new(),
            sampler: SamplerConfig::greedy(),
            anchors: Vec::new(),
            answer_start: String::new(),
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The callback asked to stop.
    Cancelled,
}

/// The result of [`generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated tokens (all appended to the session, end token excluded).
    pub tokens: Vec<u32>,
    /// Generated text (stop string excluded).
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Number of prompt tokens prefilled (new to the session).
    pub prompt_tokens: usize,
    /// Time spent prefilling the prompt.
    pub prefill_time: Duration,
    /// Time spent decoding.
    pub decode_time: Duration,
    /// Tokens chosen by value anchoring instead of the most likely one.
    pub anchored: usize,
}

/// Appends `prompt` to the session (prefilling only it), then generates. `on_text` receives
/// each piece of streamed text as soon as it is complete UTF-8 and cannot be the start of a
/// stop string; returning `false` cancels.
pub fn generate(
    session: &mut Session,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<Generation> {
    let mut sampler = Sampler::new(opts.sampler)?;
    let t0 = Instant::now();
    let mut logits: Vec<f32> = if prompt.is_empty() {
        session
            .logits()
            .ok_or_else(|| crate::EngineError::InvalidArgument("empty prompt on an empty session".into()))?
            .to_vec()
    } else {
        session.prefill(prompt)?.to_vec()
    };
    let prefill_time = t0.elapsed();
    let t1 = Instant::now();
    let model = session.model().clone();
    let tok = model.tokenizer();
    let mut dec = StreamDecoder::new(false);
    let mut text = String::new();
    let mut emitted = 0usize;
    let mut tokens = Vec::new();
    let mut stop = StopReason::MaxTokens;
    let max_stop = opts.stop.iter().map(|s| s.len()).max().unwrap_or(0);
    let anchors = ValueAnchors::new(tok, &opts.anchors);
    let mut anchored = 0;
    'gen: while tokens.len() < opts.max_tokens {
        if let Some(anchors) = &anchors {
            // With the bytes of a character not yet complete: a value that begins with "İ"
            // may be begun by a token holding its first byte only.
            let answer = [opts.answer_start.as_bytes(), text.as_bytes(), dec.pending()].concat();
            anchored += usize::from(anchors.constrain(&answer, &mut logits));
        }
        let next = sampler.sample(&logits, session.tokens());
        if tok.is_end_of_generation(next) {
            stop = StopReason::EndOfGeneration;
            break;
        }
        tokens.push(next);
        text.push_str(&dec.push(tok, next));
        // Stop strings: search the region that could contain a new match.
        // (On a character boundary: the text before `emitted` may hold multi-byte characters.)
        let mut from = emitted.saturating_sub(max_stop);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if let Some((at, _)) = opts
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text[from..].find(s.as_str()).map(|p| (from + p, s)))
            .min_by_key(|(p, _)| *p)
        {
            text.truncate(at);
            if at > emitted && !on_text(&text[emitted..]) {
                stop = StopReason::Cancelled;
            } else {
                stop = StopReason::StopString;
            }
            emitted = text.len();
            session.prefill(&[next])?;
            break 'gen;
        }
        // Hold back a suffix that could still grow into a stop string.
        let mut safe = text.len();
        for s in &opts.stop {
            for k in (1..s.len().min(text.len() + 1)).rev() {
                if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                    safe = safe.min(text.len() - k);
                    break;
                }
            }
        }
        while !text.is_char_boundary(safe) {
            safe -= 1;
        }
        if safe > emitted {
            if !on_text(&text[emitted..safe]) {
                session.prefill(&[next])?;
                stop = StopReason::Cancelled;
                break;
            }
            emitted = safe;
        }
        if tokens.len() == opts.max_tokens {
            session.prefill(&[next])?;
            break;
        }
        logits.copy_from_slice(session.decode_step(next)?);
    }
    if stop != StopReason::StopString && stop != StopReason::Cancelled {
        text.push_str(&dec.finish());
        if text.len() > emitted {
            on_text(&text[emitted..]);
        }
    }
    Ok(Generation {
        tokens,
        text,
        stop,
        prompt_tokens: prompt.len(),
        prefill_time,
        decode_time: t1.elapsed(),
        anchored,
    })
}
