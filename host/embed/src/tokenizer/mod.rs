//! The BERT WordPiece tokenizer, driven by a Hugging Face `tokenizer.json`.
//!
//! Pipeline (identical to `tokenizers` for a `BertNormalizer` + `BertPreTokenizer` +
//! `WordPiece` + `TemplateProcessing` file):
//! 1. the text is split around the *added tokens* (`[CLS]`, `[SEP]`, `[MASK]`, ... written
//!    literally in the text map straight to their ids, matched before normalisation);
//! 2. every other span is normalised ([`normalize::normalize`]) and split into words;
//! 3. each word becomes the longest-match-first word pieces, continuation pieces prefixed with
//!    `##`; a word with no complete segmentation, or longer than `max_input_chars_per_word`
//!    characters, becomes the unknown token;
//! 4. the pieces are wrapped as `[CLS] … [SEP]`.
//!
//! Truncation: the tokenizer.json of all-MiniLM-L6-v2 hard-codes truncation and padding to 128;
//! this tokenizer ignores both. Instead, [`Tokenizer::encode`] keeps at most
//! [`MAX_TOKENS`](crate::MAX_TOKENS) ids *including* `[CLS]` and `[SEP]` (the model's
//! sentence-transformers limit of 256): the first `MAX_TOKENS - 2` pieces are kept, the rest of
//! the text is ignored. No padding is ever added; batches carry their own lengths.

mod normalize;

use crate::error::EmbedError;
use normalize::{normalize, pre_tokenize, NormalizerOptions};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The parts of tokenizer.json this tokenizer reads.
#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    normalizer: Option<NormalizerSpec>,
    pre_tokenizer: Option<TypeOnly>,
    post_processor: Option<PostProcessorSpec>,
    model: WordPieceSpec,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    normalized: bool,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct NormalizerSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    clean_text: bool,
    #[serde(default = "yes")]
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    lowercase: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct PostProcessorSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    single: Vec<TemplatePiece>,
    #[serde(default)]
    special_tokens: HashMap<String, SpecialTokenSpec>,
}

#[derive(Deserialize)]
enum TemplatePiece {
    SpecialToken { id: String },
    Sequence { id: String },
}

#[derive(Deserialize)]
struct SpecialTokenSpec {
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct WordPieceSpec {
    #[serde(rename = "type")]
    kind: String,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
    vocab: HashMap<String, u32>,
}

/// A loaded BERT WordPiece tokenizer.
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    unk_id: u32,
    prefix: String,
    max_word_chars: usize,
    normalizer: NormalizerOptions,
    /// Literal added tokens matched before normalisation, longest first.
    added: Vec<(String, u32)>,
    /// Ids placed before the word pieces (`[CLS]`).
    prefix_ids: Vec<u32>,
    /// Ids placed after the word pieces (`[SEP]`).
    suffix_ids: Vec<u32>,
    max_len: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.vocab.len())
            .field("normalizer", &self.normalizer)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads a tokenizer.json of the BERT/WordPiece kind; `max_len` is the truncation length
    /// including the special tokens.
    pub(crate) fn load(path: &Path, max_len: usize) -> Result<Self, EmbedError> {
        let text = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let file: TokenizerFile =
            serde_json::from_slice(&text).map_err(|source| EmbedError::Json {
                path: path.to_path_buf(),
                expected: "a Hugging Face tokenizer.json with a WordPiece model",
                source,
            })?;
        Self::from_file(path, file, max_len)
    }

    fn from_file(path: &Path, file: TokenizerFile, max_len: usize) -> Result<Self, EmbedError> {
        let bad = |what: String| EmbedError::invalid(path, what);
        if file.model.kind != "WordPiece" {
            return Err(bad(format!(
                "model type {}; expected WordPiece (a BERT tokenizer)",
                file.model.kind
            )));
        }
        let normalizer = match file.normalizer {
            Some(n) if n.kind == "BertNormalizer" => NormalizerOptions {
                clean_text: n.clean_text,
                handle_chinese_chars: n.handle_chinese_chars,
                strip_accents: n.strip_accents.unwrap_or(n.lowercase),
                lowercase: n.lowercase,
            },
            Some(n) => {
                return Err(bad(format!(
                    "normalizer type {}; expected BertNormalizer",
                    n.kind
                )))
            }
            None => return Err(bad("no normalizer; expected BertNormalizer".into())),
        };
        match file.pre_tokenizer {
            Some(p) if p.kind == "BertPreTokenizer" => {}
            other => {
                return Err(bad(format!(
                    "pre_tokenizer {}; expected BertPreTokenizer",
                    other.map_or("missing".to_string(), |p| p.kind)
                )))
            }
        }
        let (prefix_ids, suffix_ids) = template_ids(path, file.post_processor)?;
        let vocab = file.model.vocab;
        let unk_id = *vocab.get(&file.model.unk_token).ok_or_else(|| {
            bad(format!(
                "unk_token {:?} is not in the vocabulary",
                file.model.unk_token
            ))
        })?;
        if let Some(a) = file.added_tokens.iter().find(|a| a.normalized) {
            return Err(bad(format!(
                "added token {:?} is marked normalized; only literal (normalized: false) added \
                 tokens are supported",
                a.content
            )));
        }
        let mut added: Vec<(String, u32)> = file
            .added_tokens
            .into_iter()
            .filter(|a| !a.content.is_empty())
            .map(|a| (a.content, a.id))
            .collect();
        added.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        let specials = prefix_ids.len() + suffix_ids.len();
        if max_len <= specials {
            return Err(bad(format!(
                "truncation length {max_len} leaves no room beside {specials} special tokens"
            )));
        }
        Ok(Tokenizer {
            vocab,
            unk_id,
            prefix: file.model.continuing_subword_prefix,
            max_word_chars: file.model.max_input_chars_per_word,
            normalizer,
            added,
            prefix_ids,
            suffix_ids,
            max_len,
        })
    }

    /// The ids the model sees for `text`: `[CLS]`, the word pieces (truncated so the whole
    /// sequence is at most the truncation length), `[SEP]`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = self.prefix_ids.clone();
        let room = self.max_len - self.prefix_ids.len() - self.suffix_ids.len();
        let mut pieces = self.pieces_up_to(text, room);
        pieces.truncate(room);
        ids.extend(pieces);
        ids.extend_from_slice(&self.suffix_ids);
        ids
    }

    /// The number of ids `text` encodes to *before* truncation, special tokens included;
    /// larger than the truncation length means the end of the text is not embedded.
    pub fn count(&self, text: &str) -> usize {
        self.prefix_ids.len() + self.word_pieces(text).len() + self.suffix_ids.len()
    }

    /// The word-piece ids of `text` without special tokens and without truncation.
    pub fn word_pieces(&self, text: &str) -> Vec<u32> {
        self.pieces_up_to(text, usize::MAX)
    }

    /// The word-piece ids of `text`, stopping once at least `limit` are found (so a long
    /// document is not tokenised to the end only to be truncated).
    fn pieces_up_to(&self, text: &str, limit: usize) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len().min(limit.saturating_mul(8)) / 3 + 4);
        let mut rest = text;
        loop {
            // The earliest added token in the rest of the text (the longest at that position).
            let hit = self
                .added
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            match hit {
                Some((at, len, id)) => {
                    self.plain_pieces(&rest[..at], limit, &mut ids);
                    ids.push(id);
                    rest = &rest[at + len..];
                    if ids.len() >= limit {
                        break;
                    }
                }
                None => {
                    self.plain_pieces(rest, limit, &mut ids);
                    break;
                }
            }
        }
        ids
    }

    /// Normalises, pre-tokenises and word-pieces a span containing no added token, until `out`
    /// holds at least `limit` ids.
    fn plain_pieces(&self, text: &str, limit: usize, out: &mut Vec<u32>) {
        // Normalise in slices of whole lines at a time so a long document stops early; the
        // normaliser maps every line break to a space, so splitting there changes nothing.
        for span in text.split_inclusive('\n') {
            if out.len() >= limit {
                return;
            }
            let normalized = normalize(span, self.normalizer);
            for word in pre_tokenize(&normalized) {
                if out.len() >= limit {
                    return;
                }
                self.word_to_pieces(word, out);
            }
        }
    }

    /// Greedy longest-match-first WordPiece of one word.
    fn word_to_pieces(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_word_chars {
            out.push(self.unk_id);
            return;
        }
        let first = out.len();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + self.prefix.len());
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.prefix);
                }
                candidate.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                // Step back one character.
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map_or(start, |(i, _)| i);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk_id);
                    return;
                }
            }
        }
    }

    /// The number of ids this tokenizer can produce: its largest id (vocabulary, added and
    /// special tokens) plus one.
    pub fn vocab_size(&self) -> usize {
        let vocab = self.vocab.values();
        let added = self.added.iter().map(|(_, id)| id);
        let special = self.prefix_ids.iter().chain(&self.suffix_ids);
        vocab
            .chain(added)
            .chain(special)
            .max()
            .map_or(0, |&m| m as usize + 1)
    }
}

/// Reads the `[CLS] $A [SEP]` template: the ids before and after the sequence.
fn template_ids(
    path: &Path,
    post: Option<PostProcessorSpec>,
) -> Result<(Vec<u32>, Vec<u32>), EmbedError> {
    let post = post.ok_or_else(|| {
        EmbedError::invalid(path, "no post_processor; expected TemplateProcessing")
    })?;
    if post.kind != "TemplateProcessing" {
        return Err(EmbedError::invalid(
            path,
            format!(
                "post_processor type {}; expected TemplateProcessing",
                post.kind
            ),
        ));
    }
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut seen_sequence = false;
    for piece in post.single {
        match piece {
            TemplatePiece::Sequence { id } if id == "A" && !seen_sequence => seen_sequence = true,
            TemplatePiece::Sequence { id } => {
                return Err(EmbedError::invalid(
                    path,
                    format!("single template has sequence {id}; expected exactly one sequence A"),
                ))
            }
            TemplatePiece::SpecialToken { id } => {
                let ids = &post
                    .special_tokens
                    .get(&id)
                    .ok_or_else(|| {
                        EmbedError::invalid(
                            path,
                            format!("template names special token {id} that is not defined"),
                        )
                    })?
                    .ids;
                if seen_sequence {
                    &mut after
                } else {
                    &mut before
                }
                .extend_from_slice(ids);
            }
        }
    }
    if !seen_sequence {
        return Err(EmbedError::invalid(
            path,
            "single template has no sequence A",
        ));
    }
    Ok((before, after))
}
