//! Value anchoring: once the generated text has begun one of a few given strings (the values
//! of the memory facts in the prompt), the next token is chosen among those that continue it
//! byte for byte. A small model that copies a value from its prompt sometimes drifts in the
//! middle of it ("sable52@example." followed by "com" where the prompt said "org"); anchoring
//! keeps the copy exact without deciding whether the model copies at all: nothing changes
//! until the text ends with the start of a value, at a word boundary, and a new word the model
//! starts where a word of the value ends is left to it.

use crate::tokenizer::Tokenizer;

/// Shortest start of a value (in bytes) that counts as the model copying it.
pub const MIN_BEGUN: usize = 3;
/// Shortest value anchored: shorter ones ("7", "yes") are begun by accident.
pub const MIN_VALUE: usize = 4;
/// Longest value anchored: longer ones are statements, which the model may fairly paraphrase.
pub const MAX_VALUE: usize = 64;

/// The values an answer must continue exactly once begun, with the vocabulary's bytes.
#[derive(Debug, Clone)]
pub struct ValueAnchors<'t> {
    values: Vec<Vec<u8>>,
    /// Each token's bytes (empty for control and unused tokens), by id.
    pieces: &'t [Vec<u8>],
}

impl<'t> ValueAnchors<'t> {
    /// Anchors for `values` (those of [`MIN_VALUE`]..=[`MAX_VALUE`] bytes after trimming);
    /// `None` when none is left, so that generation is exactly as without anchors.
    pub fn new(tokenizer: &'t Tokenizer, values: &[String]) -> Option<ValueAnchors<'t>> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for value in values.iter().map(|v| v.trim().as_bytes()) {
            if (MIN_VALUE..=MAX_VALUE).contains(&value.len()) && !kept.iter().any(|k| k == value) {
                kept.push(value.to_vec());
            }
        }
        if kept.is_empty() {
            return None;
        }
        Some(ValueAnchors {
            values: kept,
            pieces: tokenizer.pieces(),
        })
    }

    /// The rest of the value `text` has begun: the longest start of a value (at least
    /// [`MIN_BEGUN`] bytes, not the whole value) that `text` ends with, where the byte before
    /// it is not a letter or digit. `None` when `text` is not in the middle of a value.
    pub fn rest<'a>(&'a self, text: &[u8]) -> Option<&'a [u8]> {
        let mut best: Option<(usize, &[u8])> = None;
        for value in &self.values {
            let longest = (value.len() - 1).min(text.len());
            for len in (MIN_BEGUN..=longest).rev() {
                let at = text.len() - len;
                let boundary = at == 0 || !text[at - 1].is_ascii_alphanumeric();
                if boundary && text[at..] == value[..len] {
                    if best.is_none_or(|(l, _)| len > l) {
                        best = Some((len, &value[len..]));
                    }
                    break;
                }
            }
        }
        best.map(|(_, rest)| rest)
    }

    /// Whether token `id` continues `rest`: its bytes are a start of `rest`, or begin with
    /// all of it (the value ends inside the token: "org." for "org").
    fn continues(&self, id: usize, rest: &[u8]) -> bool {
        let piece = &self.pieces[id];
        !piece.is_empty() && (rest.starts_with(piece) || piece.starts_with(rest))
    }

    /// When `text` is in the middle of a value and the most likely token does not continue
    /// it, leave only the tokens that do (every other logit becomes −∞). Returns whether the
    /// logits changed.
    pub fn constrain(&self, text: &[u8], logits: &mut [f32]) -> bool {
        let Some(rest) = self.rest(text) else {
            return false;
        };
        let n = logits.len().min(self.pieces.len());
        let best = crate::sampler::argmax(&logits[..n]) as usize;
        if self.continues(best, rest) {
            return false;
        }
        // The text ends where a word of the value ends and the model starts another word:
        // that word was the model's own ("olive" then " oil", beside the value "olive-12").
        let word_ends = !rest[0].is_ascii_alphanumeric();
        if word_ends && self.pieces[best].first().is_some_and(u8::is_ascii_whitespace) {
            return false;
        }
        // One pass over the vocabulary; the logits change only if some token continues.
        let allowed: Vec<bool> = (0..n).map(|id| self.continues(id, rest)).collect();
        if !allowed.contains(&true) {
            return false;
        }
        for (id, logit) in logits.iter_mut().enumerate() {
            if !allowed.get(id).copied().unwrap_or(false) {
                *logit = f32::NEG_INFINITY;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchors<'t>(values: &[&str], pieces: &'t [Vec<u8>]) -> ValueAnchors<'t> {
        ValueAnchors {
            values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
            pieces,
        }
    }

    fn pieces(pieces: &[&str]) -> Vec<Vec<u8>> {
        pieces.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_rest_is_found_only_once_a_value_has_begun_at_a_word_boundary() {
        let a = anchors(&["sable52@example.org", "10.1.34.232"], &[]);
        assert_eq!(a.rest(b"It is sable52@example."), Some(&b"org"[..]));
        assert_eq!(a.rest(b"The ip is 10.1.3"), Some(&b"4.232"[..]));
        assert_eq!(a.rest(b"sab"), Some(&b"le52@example.org"[..]));
        // Too short a start, inside a word, or the whole value already written.
        assert_eq!(a.rest(b"It is sa"), None);
        assert_eq!(a.rest(b"disable52@ex"), None);
        assert_eq!(a.rest(b"It is 10.1.34.232"), None);
        assert_eq!(a.rest(b""), None);
    }

    #[test]
    fn only_a_drifting_copy_is_constrained() {
        let vocab = pieces(&["com", "org", "or", "org.", ".", "x"]);
        let a = anchors(&["sable52@example.org"], &vocab);
        // The model prefers "com": only the tokens that continue "org" are left.
        let mut logits = vec![5.0, 3.0, 1.0, 2.0, 0.0, 0.0];
        assert!(a.constrain(b"sable52@example.", &mut logits));
        let inf = f32::NEG_INFINITY;
        assert_eq!(logits, [inf, 3.0, 1.0, 2.0, inf, inf]);
        // It already continues the value, or it is not copying one: untouched.
        let mut logits = vec![1.0, 5.0, 0.0, 0.0, 0.0, 0.0];
        assert!(!a.constrain(b"sable52@example.", &mut logits));
        let mut logits = vec![5.0, 3.0, 1.0, 2.0, 0.0, 0.0];
        assert!(!a.constrain(b"Hello there.", &mut logits));
        assert_eq!(logits, [5.0, 3.0, 1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn a_new_word_after_a_word_of_the_value_is_the_models_own() {
        let vocab = pieces(&[" oil", "-", "-12", ".", "2"]);
        let a = anchors(&["olive-12"], &vocab);
        // "olive" then " oil": left alone; "olive" then "." : the value goes on.
        let mut logits = vec![5.0, 1.0, 2.0, 0.0, 0.0];
        assert!(!a.constrain(b"I like olive", &mut logits));
        let mut logits = vec![0.0, 1.0, 2.0, 5.0, 0.0];
        assert!(a.constrain(b"The colour is olive", &mut logits));
        assert_eq!(crate::sampler::argmax(&logits), 2);
        // Inside a word of the value a space does not end the copy: "olive-1" then " …".
        let mut logits = vec![5.0, 0.0, 0.0, 0.0, 2.0];
        assert!(a.constrain(b"It is olive-1", &mut logits));
    }
}
