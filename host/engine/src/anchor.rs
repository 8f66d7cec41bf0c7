//! Value anchoring: once the generated text has begun one of a few given strings (the values
//! of the memory facts in the prompt), the next token is chosen among those that continue it
//! byte for byte. A small model that copies a value from its prompt sometimes drifts in the
//! middle of it ("sable52@example." followed by "com" where the prompt said "org"); anchoring
//! keeps the copy exact without deciding whether the model copies at all: nothing changes
//! until the text ends with the start of a value, at a word boundary, and a new word the model
//! starts where a word of the value ends is left to it. A value may also carry its lead, the
//! words just before it where the memory state states it ("hint is" in "… password hint is
//! amber-529."): once the text ends with them, the value is begun with nothing of it written
//! yet, so "password hint is" goes on " amber-529" and not " 529" (what the default 135M model
//! wrote for 7 of 128 such answers at N = 1024 of the horizon benchmark).

use std::borrow::Cow;

use crate::tokenizer::Tokenizer;

/// Shortest start of a value (in bytes) that counts as the model copying it.
pub const MIN_BEGUN: usize = 3;
/// Shortest value anchored without a lead: shorter ones ("7", "yes") are begun by accident.
/// A value with a lead is anchored whatever its length, and only after its lead ("name is"
/// then " Ada"), where nothing is begun by accident.
pub const MIN_VALUE: usize = 4;
/// Longest value anchored: longer ones are statements, which the model may fairly paraphrase.
pub const MAX_VALUE: usize = 64;

/// A value an answer continues exactly once begun, with the words that lead into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchor {
    /// The value, as the memory state gives it.
    pub value: String,
    /// The words just before the value in the memory state ("hint is"): an answer that ends
    /// with them (ASCII case aside, at a word boundary) goes on with the value. `None`: only a
    /// begun value is continued.
    pub lead: Option<String>,
}

impl From<&str> for Anchor {
    fn from(value: &str) -> Anchor {
        Anchor {
            value: value.to_string(),
            lead: None,
        }
    }
}

/// An anchor as kept: the value's bytes and its lead's, lowercased.
#[derive(Debug, Clone)]
struct Kept {
    value: Vec<u8>,
    lead: Option<Vec<u8>>,
}

/// What is left of a value the text is in the middle of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rest<'a> {
    /// The bytes still to write (with the space before the value when only its lead is
    /// written).
    pub bytes: Cow<'a, [u8]>,
    /// Only the lead is written: a token starting a new word is not the model's own word here.
    pub led: bool,
}

/// The values an answer must continue exactly once begun, with the vocabulary's bytes.
#[derive(Debug, Clone)]
pub struct ValueAnchors<'t> {
    values: Vec<Kept>,
    /// Each token's bytes (empty for control and unused tokens), by id.
    pieces: &'t [Vec<u8>],
}

impl<'t> ValueAnchors<'t> {
    /// Anchors for `values` (those of [`MIN_VALUE`]..=[`MAX_VALUE`] bytes after trimming; a
    /// lead two values share is dropped, since it does not say which one follows); `None`
    /// when none is left, so that generation is exactly as without anchors.
    pub fn new(tokenizer: &'t Tokenizer, values: &[Anchor]) -> Option<ValueAnchors<'t>> {
        Self::from_pieces(values, tokenizer.pieces())
    }

    fn from_pieces(values: &[Anchor], pieces: &'t [Vec<u8>]) -> Option<ValueAnchors<'t>> {
        let mut kept: Vec<Kept> = Vec::new();
        for anchor in values {
            let value = anchor.value.trim().as_bytes();
            let lead = anchor
                .lead
                .as_deref()
                .map(|lead| lead.trim().to_ascii_lowercase().into_bytes())
                .filter(|lead| !lead.is_empty());
            let shortest = if lead.is_some() { 1 } else { MIN_VALUE };
            let fits = (shortest..=MAX_VALUE).contains(&value.len());
            if fits && !kept.iter().any(|k| k.value == value) {
                kept.push(Kept {
                    value: value.to_vec(),
                    lead,
                });
            }
        }
        let leads: Vec<Option<Vec<u8>>> = kept.iter().map(|k| k.lead.clone()).collect();
        for k in &mut kept {
            if k.lead.is_some() && leads.iter().filter(|l| **l == k.lead).count() > 1 {
                k.lead = None;
            }
        }
        // A short value is anchored only by its lead.
        kept.retain(|k| k.lead.is_some() || k.value.len() >= MIN_VALUE);
        if kept.is_empty() {
            return None;
        }
        Some(ValueAnchors { values: kept, pieces })
    }

    /// The rest of the value `text` has begun: the longest start of a value (at least
    /// [`MIN_BEGUN`] bytes, not the whole value) that `text` ends with, where the byte before
    /// it is not a letter or digit; else, when `text` ends with a value's lead (then perhaps a
    /// space and the value's first bytes), what is left of that value. `None` when `text` is
    /// not in the middle of a value.
    pub fn rest<'a>(&'a self, text: &[u8]) -> Option<Rest<'a>> {
        let mut best: Option<(usize, &[u8])> = None;
        for kept in &self.values {
            let value = &kept.value;
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
        if let Some((_, rest)) = best {
            return Some(Rest {
                bytes: Cow::Borrowed(rest),
                led: false,
            });
        }
        self.values.iter().find_map(|kept| {
            let lead = kept.lead.as_deref()?;
            let ends_with_lead = |said: &[u8]| {
                let Some(at) = said.len().checked_sub(lead.len()) else {
                    return false;
                };
                let boundary = at == 0 || !said[at - 1].is_ascii_alphanumeric();
                boundary && said[at..].eq_ignore_ascii_case(lead)
            };
            if ends_with_lead(text) {
                let bytes = Cow::Owned([b" ", &kept.value[..]].concat());
                return Some(Rest { bytes, led: true });
            }
            // The lead, a space and the first bytes of the value (fewer than a begun value
            // needs: " am" of " amber-625").
            let value = &kept.value;
            (0..value.len()).rev().find_map(|len| {
                let said = text.strip_suffix(&value[..len])?.strip_suffix(b" ")?;
                ends_with_lead(said).then(|| Rest {
                    bytes: Cow::Borrowed(&value[len..]),
                    led: true,
                })
            })
        })
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
        let Some(Rest { bytes, led }) = self.rest(text) else {
            return false;
        };
        let rest = &bytes[..];
        let n = logits.len().min(self.pieces.len());
        let best = crate::sampler::argmax(&logits[..n]) as usize;
        if self.continues(best, rest) {
            return false;
        }
        // The text ends where a word of the value ends and the model starts another word:
        // that word was the model's own ("olive" then " oil", beside the value "olive-12").
        let word_ends = !led && !rest[0].is_ascii_alphanumeric();
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
        let values: Vec<Anchor> = values.iter().map(|v| Anchor::from(*v)).collect();
        ValueAnchors::from_pieces(&values, pieces).unwrap()
    }

    fn rest(a: &ValueAnchors<'_>, text: &[u8]) -> Option<Vec<u8>> {
        a.rest(text).map(|rest| rest.bytes.into_owned())
    }

    fn pieces(pieces: &[&str]) -> Vec<Vec<u8>> {
        pieces.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_rest_is_found_only_once_a_value_has_begun_at_a_word_boundary() {
        let a = anchors(&["sable52@example.org", "10.1.34.232"], &[]);
        assert_eq!(rest(&a, b"It is sable52@example."), Some(b"org".to_vec()));
        assert_eq!(rest(&a, b"The ip is 10.1.3"), Some(b"4.232".to_vec()));
        assert_eq!(rest(&a, b"sab"), Some(b"le52@example.org".to_vec()));
        // Too short a start, inside a word, or the whole value already written.
        assert_eq!(rest(&a, b"It is sa"), None);
        assert_eq!(rest(&a, b"disable52@ex"), None);
        assert_eq!(rest(&a, b"It is 10.1.34.232"), None);
        assert_eq!(rest(&a, b""), None);
    }

    #[test]
    fn after_its_lead_the_whole_value_is_the_rest() {
        let lead = |value: &str, lead: &str| Anchor {
            value: value.into(),
            lead: Some(lead.into()),
        };
        let a = ValueAnchors::from_pieces(&[lead("amber-529", "hint is")], &[]).unwrap();
        assert_eq!(rest(&a, b" password Hint is"), Some(b" amber-529".to_vec()));
        assert_eq!(rest(&a, b" password hint is "), Some(b"amber-529".to_vec()));
        assert!(a.rest(b"hint is").unwrap().led);
        // Not at a word boundary, the value already begun, or already written.
        assert_eq!(rest(&a, b" ahint is"), None);
        assert_eq!(rest(&a, b" hint is amb"), Some(b"er-529".to_vec()));
        assert!(!a.rest(b" hint is amb").unwrap().led);
        assert_eq!(rest(&a, b" hint is amber-529"), None);
        // After the lead, fewer bytes than a begun value needs still continue it.
        assert_eq!(rest(&a, b" hint is am"), Some(b"ber-529".to_vec()));
        assert!(a.rest(b" hint is am").unwrap().led);
        // A lead two values share says nothing: dropped.
        let both = [lead("amber-529", "hint is"), lead("cobalt-7", "hint is")];
        let a = ValueAnchors::from_pieces(&both, &[]).unwrap();
        assert_eq!(rest(&a, b"hint is"), None);
    }

    #[test]
    fn after_its_lead_a_new_word_that_is_not_the_value_is_held_back() {
        let vocab = pieces(&[" 529", " amber", " am", "."]);
        let anchor = Anchor {
            value: "amber-529".into(),
            lead: Some("hint is".into()),
        };
        let a = ValueAnchors::from_pieces(&[anchor], &vocab).unwrap();
        let mut logits = vec![5.0, 3.0, 1.0, 0.0];
        assert!(a.constrain(b" password hint is", &mut logits));
        assert_eq!(crate::sampler::argmax(&logits), 1);
        // Already on the value: untouched.
        let mut logits = vec![1.0, 5.0, 0.0, 0.0];
        assert!(!a.constrain(b" password hint is", &mut logits));
    }

    #[test]
    fn a_short_value_is_anchored_after_its_lead_only() {
        let vocab = pieces(&[" not", " Ada", " A", "."]);
        let led = Anchor {
            value: "Ada".into(),
            lead: Some("name is".into()),
        };
        let a = ValueAnchors::from_pieces(&[led], &vocab).unwrap();
        // "No, your name is" then " not": the value follows its lead.
        let mut logits = vec![5.0, 3.0, 1.0, 0.0];
        assert!(a.constrain(b"No, your name is", &mut logits));
        assert_eq!(crate::sampler::argmax(&logits), 1);
        // Anywhere else the short value is not looked for.
        let mut logits = vec![5.0, 3.0, 1.0, 0.0];
        assert!(!a.constrain(b"Ad", &mut logits));
        assert!(!a.constrain(b"The name", &mut logits));
        // Without a lead a short value is not anchored at all.
        assert!(ValueAnchors::from_pieces(&["Ada".into()], &vocab).is_none());
        // Nor when the lead it had is shared, and so dropped.
        let shared = |value: &str| Anchor {
            value: value.into(),
            lead: Some("name is".into()),
        };
        assert!(ValueAnchors::from_pieces(&[shared("Ada"), shared("Eve")], &vocab).is_none());
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
