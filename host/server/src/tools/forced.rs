//! Forced tool calls (`tool_choice` `"required"` or a named function): the server writes the
//! call's opening itself, lets the model choose among the offered names where it must, and
//! constrains the arguments token by token to a JSON object ([`JsonPrefix`]) — so the answer
//! always names an offered function and its `arguments` always parse.
//!
//! Sampling under a constraint: at temperature 0 the most likely token whose bytes keep the
//! text valid wins; above 0 the request's temperature/top-p apply among the 40 most likely
//! valid tokens, with a seeded RNG. If the token budget runs out mid-object, the object is
//! closed by [`JsonPrefix::completion`].

use engram_engine::{EngineError, SamplerConfig, Session, Tokenizer};

use super::json::JsonPrefix;
use super::parse::{ParsedCall, HERMES_CLOSE, HERMES_OPEN, SEED_CLOSE, SEED_OPEN};
use super::prompt::Protocol;

/// Valid tokens considered when sampling above temperature 0.
const SAMPLE_TOP_K: usize = 40;

/// What a forced call produced.
#[derive(Debug, Clone)]
pub struct ForcedCall {
    /// The call (its name one of the offered ones, its arguments a JSON object).
    pub call: ParsedCall,
    /// Tokens appended to the session for the answer (forced and sampled).
    pub tokens: u32,
    /// The arguments' token budget ran out and the object was closed by the server.
    pub truncated: bool,
    /// The request was cancelled; the call is closed early.
    pub cancelled: bool,
}

/// Which function to call.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// This one.
    Named(&'a str),
    /// Any of these; the model picks.
    AnyOf(&'a [String]),
}

struct Decoder<'s> {
    session: &'s mut Session,
    logits: Vec<f32>,
    rng: u64,
    sampler: SamplerConfig,
    tokens: u32,
}

impl Decoder<'_> {
    /// Append text the server writes itself.
    fn force(&mut self, text: &str) -> Result<(), EngineError> {
        let ids = self.session.model().tokenizer().encode(text, true);
        if ids.is_empty() {
            return Ok(());
        }
        self.logits = self.session.prefill(&ids)?.to_vec();
        self.tokens += ids.len() as u32;
        Ok(())
    }

    /// Sample one token whose bytes `accept` takes, append it, and return its bytes.
    fn constrained(
        &mut self,
        mut accept: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let model = self.session.model().clone();
        let tok = model.tokenizer();
        let Some(id) = pick(&self.logits, tok, self.sampler, &mut self.rng, &mut accept) else {
            return Ok(None);
        };
        let piece = tok.token_to_piece(id, false);
        self.logits = self.session.decode_step(id)?.to_vec();
        self.tokens += 1;
        Ok(Some(piece))
    }
}

fn next_unit(rng: &mut u64) -> f32 {
    *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// The token to take: valid under `accept` (non-empty bytes, not an end token).
fn pick(
    logits: &[f32],
    tok: &Tokenizer,
    sampler: SamplerConfig,
    rng: &mut u64,
    accept: &mut impl FnMut(&[u8]) -> bool,
) -> Option<u32> {
    let mut valid = |id: u32| {
        if tok.is_end_of_generation(id) {
            return false;
        }
        let piece = tok.token_to_piece(id, false);
        !piece.is_empty() && accept(&piece)
    };
    let greedy = sampler.temperature <= 0.0;
    if greedy {
        let best = engram_engine::sampler::argmax(logits);
        if valid(best) {
            return Some(best);
        }
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    let mut chosen = Vec::new();
    for id in order {
        if valid(id) {
            if greedy {
                return Some(id);
            }
            chosen.push(id);
            if chosen.len() == SAMPLE_TOP_K {
                break;
            }
        }
    }
    let first = *chosen.first()?;
    let t = sampler.temperature.max(1e-3);
    let top = logits[first as usize];
    let weights: Vec<f32> = chosen
        .iter()
        .map(|&id| ((logits[id as usize] - top) / t).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    // Nucleus: the smallest prefix reaching top_p of the mass.
    let mut kept = 0;
    let mut mass = 0.0;
    for w in &weights {
        kept += 1;
        mass += w / total;
        if mass >= sampler.top_p {
            break;
        }
    }
    let kept_total: f32 = weights[..kept].iter().sum();
    let mut r = next_unit(rng) * kept_total;
    for (i, w) in weights[..kept].iter().enumerate() {
        if r < *w {
            return Some(chosen[i]);
        }
        r -= w;
    }
    Some(chosen[kept - 1])
}

/// Write a call after the prompt already held by `session` (its logits are the next
/// token's). `max_tokens` bounds the sampled argument tokens.
pub fn forced_call(
    session: &mut Session,
    protocol: Protocol,
    target: Target<'_>,
    sampler: SamplerConfig,
    max_tokens: usize,
    cancelled: &dyn Fn() -> bool,
) -> Result<ForcedCall, EngineError> {
    let logits = session
        .logits()
        .ok_or_else(|| EngineError::InvalidArgument("forced call on an empty session".into()))?
        .to_vec();
    let mut d = Decoder {
        session,
        logits,
        rng: sampler.seed ^ 0x5EED_7001,
        sampler,
        tokens: 0,
    };
    let (open, name_end, close) = match protocol {
        Protocol::Template => (
            format!("{HERMES_OPEN}\n{{\"name\": \""),
            "\"",
            format!("}}\n{HERMES_CLOSE}"),
        ),
        Protocol::Text => (SEED_OPEN.to_string(), "\">", SEED_CLOSE.to_string()),
    };
    let mut stop = false;
    let name = match target {
        Target::Named(name) => {
            d.force(&format!("{open}{name}{name_end}"))?;
            name.to_string()
        }
        Target::AnyOf(names) => {
            d.force(&open)?;
            let options: Vec<Vec<u8>> = names
                .iter()
                .map(|n| format!("{n}{name_end}").into_bytes())
                .collect();
            let mut typed: Vec<u8> = Vec::new();
            // Each step extends `typed` while it stays a prefix of an option; it ends on an
            // exact option (names carry no quote, so no option extends another).
            while !options.contains(&typed) {
                if cancelled() {
                    stop = true;
                    break;
                }
                let piece = d.constrained(|bytes| {
                    let mut next = typed.clone();
                    next.extend_from_slice(bytes);
                    options.iter().any(|o| o.starts_with(&next))
                })?;
                match piece {
                    Some(bytes) => typed.extend_from_slice(&bytes),
                    None => break,
                }
            }
            match options.iter().position(|o| *o == typed) {
                Some(i) => names[i].clone(),
                None => {
                    // Cancelled (or no valid token, which byte-level vocabularies rule out):
                    // finish the name the model started, else the first one.
                    let i = options
                        .iter()
                        .position(|o| o.starts_with(&typed))
                        .unwrap_or(0);
                    d.force(std::str::from_utf8(&options[i][typed.len()..]).unwrap_or(""))?;
                    names[i].clone()
                }
            }
        }
    };
    if protocol == Protocol::Template {
        d.force(", \"arguments\": ")?;
    }
    let mut json = JsonPrefix::new();
    let mut sampled = 0;
    while !json.is_done() && sampled < max_tokens && !stop {
        if cancelled() {
            stop = true;
            break;
        }
        let piece = d.constrained(|bytes| json.clone().feed(bytes))?;
        match piece {
            Some(bytes) => {
                json.feed(&bytes);
                sampled += 1;
            }
            None => break,
        }
    }
    let truncated = !json.is_done() && !stop;
    let (_, tail) = json.completion();
    d.force(&format!("{tail}{close}"))?;
    let arguments = json.completed_text();
    // Compact form, as in every other answer.
    let arguments = serde_json::from_str::<serde_json::Value>(&arguments)
        .map(|v| v.to_string())
        .unwrap_or(arguments);
    Ok(ForcedCall {
        call: ParsedCall { name, arguments },
        tokens: d.tokens,
        truncated,
        cancelled: stop,
    })
}
