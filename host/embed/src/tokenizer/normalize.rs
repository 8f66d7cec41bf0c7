//! BERT text normalisation and pre-tokenisation, as the `BertNormalizer` and
//! `BertPreTokenizer` of Hugging Face `tokenizers` define them.
//!
//! The character classes follow that implementation exactly (it uses the same
//! `unicode_categories` tables), because a single differing class changes token ids.

use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

/// Which steps of the BERT normaliser are on (read from tokenizer.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NormalizerOptions {
    /// Drop control characters and U+FFFD, map every whitespace character to a space.
    pub clean_text: bool,
    /// Surround CJK ideographs with spaces so each becomes its own word.
    pub handle_chinese_chars: bool,
    /// Decompose (NFD) and drop non-spacing marks.
    pub strip_accents: bool,
    /// Lowercase (Unicode, may expand one char into several).
    pub lowercase: bool,
}

/// Whitespace as BERT sees it: tab, newline, carriage return and Unicode `White_Space`.
fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control characters as BERT sees it: general category C* (Cc, Cf, Cn, Co, Cs) except the
/// three whitespace controls.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// The CJK Unified Ideograph blocks BERT splits into single-character words.
fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// Punctuation as BERT sees it: ASCII punctuation (which includes symbols like `$`, `+`, `^`)
/// or Unicode general category P*.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// Applies the enabled normalisation steps in the order BERT does: clean, CJK, accents, case.
pub(crate) fn normalize(text: &str, opts: NormalizerOptions) -> String {
    let mut s: String = if opts.clean_text {
        text.chars()
            .filter(|&c| !(c == '\0' || c == '\u{FFFD}' || is_control(c)))
            .map(|c| if is_whitespace(c) { ' ' } else { c })
            .collect()
    } else {
        text.to_owned()
    };
    if opts.handle_chinese_chars && s.chars().any(is_chinese_char) {
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            if is_chinese_char(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        s = out;
    }
    if opts.strip_accents {
        s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
    }
    if opts.lowercase {
        s = s.chars().flat_map(char::to_lowercase).collect();
    }
    s
}

/// Splits normalised text into words: on whitespace (dropped), and every punctuation
/// character becomes a word of its own.
pub(crate) fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .flat_map(split_punctuation)
}

/// Splits one whitespace-free word around its punctuation characters.
fn split_punctuation(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        let (i, c) = rest.char_indices().next()?;
        debug_assert_eq!(i, 0);
        let end = if is_punctuation(c) {
            c.len_utf8()
        } else {
            rest.char_indices()
                .find(|&(_, c)| is_punctuation(c))
                .map_or(rest.len(), |(j, _)| j)
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT: NormalizerOptions = NormalizerOptions {
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: true,
        lowercase: true,
    };

    #[test]
    fn normalizes_like_bert() {
        assert_eq!(
            normalize("Héllo\tWÖRLD\u{0}\u{200B}!", BERT),
            "hello world!"
        );
        // CJK ideographs become words; NFD splits the dakuten off で (U+3067) and drops it.
        assert_eq!(normalize("東京で", BERT), " 東  京 \u{3066}");
        assert_eq!(normalize("Crème Brûlée", BERT), "creme brulee");
        let off = NormalizerOptions {
            clean_text: false,
            handle_chinese_chars: false,
            strip_accents: false,
            lowercase: false,
        };
        assert_eq!(normalize("Héllo\tX", off), "Héllo\tX");
    }

    #[test]
    fn splits_words_and_punctuation() {
        let words: Vec<_> = pre_tokenize("  don't stop -- $5.00, ok?  ").collect();
        assert_eq!(
            words,
            ["don", "'", "t", "stop", "-", "-", "$", "5", ".", "00", ",", "ok", "?"]
        );
        assert_eq!(pre_tokenize("").count(), 0);
        assert_eq!(pre_tokenize("¿qué?").collect::<Vec<_>>(), ["¿", "qué", "?"]);
    }
}
