//! The byte-level BPE tokenizer stored in a GGUF file (`tokenizer.ggml.model = gpt2`), with
//! the model's pre-tokenizer and special tokens, matching llama.cpp's `llama-vocab.cpp`.

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use fancy_regex::Regex;
use std::collections::HashMap;

/// GGUF token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// An ordinary vocabulary entry.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token (`<|im_start|>`, `<|endoftext|>`): only parsed from text on request,
    /// rendered as nothing unless asked.
    Control,
    /// A user-defined added token: always matched verbatim in text.
    UserDefined,
    /// Unused slot.
    Unused,
    /// A raw byte token (`<0x0A>`).
    Byte,
}

impl TokenType {
    fn from_i64(v: i64) -> TokenType {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// The pre-tokenizer that splits text into words before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex (llama.cpp's `default`/`gpt2`).
    Gpt2,
    /// SmolLM / StarCoder: every digit separately, then the GPT-2 regex.
    SmolLm,
    /// Qwen2: the Qwen2 regex (single digits, newline handling).
    Qwen2,
    /// Llama 3 (`llama-bpe`): digits in groups of up to three.
    Llama3,
}

impl PreTokenizer {
    fn from_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "default" | "gpt2" | "gpt-2" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
                PreTokenizer::SmolLm
            }
            "qwen2" | "deepseek-r1-qwen" | "megrez" => PreTokenizer::Qwen2,
            "llama-bpe" | "llama3" | "falcon3" | "pixtral" => PreTokenizer::Llama3,
            _ => return None,
        })
    }

    fn patterns(self) -> &'static [&'static str] {
        const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
        match self {
            PreTokenizer::Gpt2 => &[GPT2],
            PreTokenizer::SmolLm => &[r"\p{N}", GPT2],
            PreTokenizer::Qwen2 => &[
                r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ],
            PreTokenizer::Llama3 => &[
                r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ],
        }
    }
}

/// GPT-2's reversible byte ↔ printable-character mapping.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

/// A byte-level BPE tokenizer.
pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<TokenType>,
    ids: HashMap<String, u32>,
    merges: HashMap<(u32, u32), (u32, u32)>,
    char_byte: HashMap<char, u8>,
    byte_token: [Option<u32>; 256],
    pre: PreTokenizer,
    regexes: Vec<Regex>,
    /// Special tokens matched in text, longest first: (text, id, is control/unknown).
    specials: Vec<(String, u32, bool)>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    /// Every token's bytes ([`Tokenizer::pieces`]), built on first use.
    pieces: std::sync::OnceLock<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.tokens.len())
            .field("pre", &self.pre)
            .finish()
    }
}

impl Tokenizer {
    /// Reads the tokenizer from GGUF metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer> {
        let model = f.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(f.meta_err(
                "tokenizer.ggml.model",
                &format!("`{model}` is not supported (expected `gpt2`, byte-level BPE)"),
            ));
        }
        let tokens: Vec<String> = f
            .get("tokenizer.ggml.tokens")?
            .as_array()
            .ok_or_else(|| f.meta_err("tokenizer.ggml.tokens", "expected an array of strings"))?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| f.meta_err("tokenizer.ggml.tokens", "expected an array of strings"))?;
        let types = match f.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => {
                let a = v
                    .as_array()
                    .ok_or_else(|| f.meta_err("tokenizer.ggml.token_type", "expected an array"))?;
                if a.len() != tokens.len() {
                    return Err(f.meta_err(
                        "tokenizer.ggml.token_type",
                        &format!("{} entries for {} tokens", a.len(), tokens.len()),
                    ));
                }
                a.iter()
                    .map(|t| TokenType::from_i64(t.as_f64().unwrap_or(1.0) as i64))
                    .collect()
            }
            None => vec![TokenType::Normal; tokens.len()],
        };
        let merges: Vec<String> = f
            .get("tokenizer.ggml.merges")?
            .as_array()
            .ok_or_else(|| f.meta_err("tokenizer.ggml.merges", "expected an array of strings"))?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| f.meta_err("tokenizer.ggml.merges", "expected an array of strings"))?;
        let pre_name = f
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let pre = PreTokenizer::from_name(pre_name).ok_or_else(|| {
            f.meta_err(
                "tokenizer.ggml.pre",
                &format!("pre-tokenizer `{pre_name}` is not supported (supported: default, smollm, qwen2, llama-bpe)"),
            )
        })?;
        let id_of = |key: &str| -> Result<Option<u32>> {
            match f.metadata.get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.as_u64().ok_or_else(|| f.meta_err(key, "expected a token id"))?;
                    if id as usize >= tokens.len() {
                        return Err(f.meta_err(
                            key,
                            &format!("token id {id} is outside the vocabulary of {}", tokens.len()),
                        ));
                    }
                    Ok(Some(id as u32))
                }
            }
        };
        let bos = id_of("tokenizer.ggml.bos_token_id")?;
        let eos = id_of("tokenizer.ggml.eos_token_id")?;
        let eot = id_of("tokenizer.ggml.eot_token_id")?;
        let add_bos = f
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Self::new(tokens, types, &merges, pre, bos, eos, eot, add_bos)
    }

    /// Builds a tokenizer from its parts (used by [`Tokenizer::from_gguf`] and tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tokens: Vec<String>,
        types: Vec<TokenType>,
        merges: &[String],
        pre: PreTokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        eot: Option<u32>,
        add_bos: bool,
    ) -> Result<Tokenizer> {
        if tokens.is_empty() || tokens.len() != types.len() || tokens.len() > u32::MAX as usize {
            return Err(EngineError::Tokenizer(format!(
                "{} tokens with {} types",
                tokens.len(),
                types.len()
            )));
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else { continue };
            let (Some(&ia), Some(&ib)) = (ids.get(a), ids.get(b)) else {
                continue;
            };
            let Some(&im) = ids.get(&format!("{a}{b}")) else {
                continue;
            };
            merge_map.entry((ia, ib)).or_insert((rank as u32, im));
        }
        let byte_char = byte_to_char_table();
        let char_byte = byte_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            *slot = ids.get(&byte_char[b].to_string()).copied();
        }
        let regexes = pre
            .patterns()
            .iter()
            .map(|p| Regex::new(p).map_err(|e| EngineError::Tokenizer(format!("pre-tokenizer regex: {e}"))))
            .collect::<Result<_>>()?;
        let mut specials: Vec<(String, u32, bool)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, ty))| {
                !t.is_empty() && matches!(ty, TokenType::Control | TokenType::UserDefined | TokenType::Unknown)
            })
            .map(|(i, (t, ty))| (t.clone(), i as u32, *ty != TokenType::UserDefined))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Ok(Tokenizer {
            tokens,
            types,
            ids,
            merges: merge_map,
            char_byte,
            byte_token,
            pre,
            regexes,
            specials,
            bos,
            eos,
            eot,
            add_bos,
            pieces: std::sync::OnceLock::new(),
        })
    }

    /// Every token's bytes by id, as [`Tokenizer::token_to_piece`] without control tokens
    /// (built once, on first use: about 2 MiB for a 49k vocabulary).
    pub fn pieces(&self) -> &[Vec<u8>] {
        self.pieces.get_or_init(|| {
            (0..self.tokens.len() as u32)
                .map(|id| self.token_to_piece(id, false))
                .collect()
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// Whether the model expects a BOS token in front of a prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }
    /// The stored text of token `id` (byte-level encoded for normal tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(|s| s.as_str())
    }
    /// The type of token `id`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    /// Looks up a token by its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// True for tokens that end a generation: EOS, EOT, and control tokens named like an end
    /// marker (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, `</s>`).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        if Some(id) == self.eos || Some(id) == self.eot {
            return true;
        }
        matches!(self.token_type(id), Some(TokenType::Control))
            && matches!(
                self.token_text(id),
                Some("<|im_end|>" | "<|endoftext|>" | "<|eot_id|>" | "</s>" | "<|end|>" | "<end_of_turn>")
            )
    }

    /// Tokenizes `text` (no BOS is added). With `parse_special`, control tokens written in the
    /// text (`<|im_start|>`) become their ids; user-defined added tokens are always matched.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut fragments: Vec<Result<u32, &str>> = vec![Err(text)];
        for (st, id, control) in &self.specials {
            if *control && !parse_special {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len());
            for frag in fragments {
                match frag {
                    Ok(id) => next.push(Ok(id)),
                    Err(s) => {
                        let mut rest = s;
                        while let Some(p) = rest.find(st.as_str()) {
                            if p > 0 {
                                next.push(Err(&rest[..p]));
                            }
                            next.push(Ok(*id));
                            rest = &rest[p + st.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Err(rest));
                        }
                    }
                }
            }
            fragments = next;
        }
        for frag in fragments {
            match frag {
                Ok(id) => out.push(id),
                Err(s) => self.encode_plain(s, &mut out),
            }
        }
        out
    }

    /// Splits `text` into pre-tokenizer words the way llama.cpp's `unicode_regex_split` does:
    /// each pattern splits every piece into its matches and the gaps between them.
    pub fn pre_tokenize<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                let mut pos = 0;
                while pos <= piece.len() {
                    let m = match re.find_from_pos(piece, pos) {
                        Ok(Some(m)) => m,
                        _ => break,
                    };
                    if m.end() == m.start() {
                        // Empty match: step one character forward.
                        pos = m.end() + piece[m.end()..].chars().next().map_or(1, |c| c.len_utf8());
                        continue;
                    }
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    next.push(m.as_str());
                    last = m.end();
                    pos = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = Vec::new();
        for word in self.pre_tokenize(text) {
            symbols.clear();
            for b in word.bytes() {
                match self.byte_token[b as usize] {
                    Some(id) => symbols.push(id),
                    None => tracing::warn!(byte = b, "byte has no token in this vocabulary; dropped"),
                }
            }
            loop {
                let mut best: Option<(u32, usize, u32)> = None;
                for i in 0..symbols.len().saturating_sub(1) {
                    if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
                        if best.is_none_or(|(r, _, _)| rank < r) {
                            best = Some((rank, i, merged));
                        }
                    }
                }
                let Some((_, i, merged)) = best else { break };
                symbols[i] = merged;
                symbols.remove(i + 1);
            }
            out.extend_from_slice(&symbols);
        }
    }

    /// The bytes token `id` stands for. Control tokens give their text only when `special`.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.types[id as usize] {
            TokenType::Normal => text
                .chars()
                .map(|c| self.char_byte.get(&c).copied().unwrap_or(b'?'))
                .collect(),
            TokenType::UserDefined => text.as_bytes().to_vec(),
            TokenType::Byte => {
                // `<0xAB>`
                u8::from_str_radix(text.trim_start_matches("<0x").trim_end_matches('>'), 16)
                    .map(|b| vec![b])
                    .unwrap_or_default()
            }
            TokenType::Control | TokenType::Unknown => {
                if special {
                    text.as_bytes().to_vec()
                } else {
                    Vec::new()
                }
            }
            TokenType::Unused => Vec::new(),
        }
    }

    /// Decodes tokens to text (invalid UTF-8 becomes U+FFFD). Control tokens are rendered
    /// only when `special`.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_to_piece(id, special)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Checks that every id is inside the vocabulary.
    pub fn validate(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| id as usize >= self.tokens.len()) {
            Some(&id) => Err(EngineError::BadToken {
                id,
                vocab: self.tokens.len(),
            }),
            None => Ok(()),
        }
    }
}

/// Turns a stream of tokens into text without ever emitting a broken UTF-8 sequence: bytes of
/// a character split across tokens are held back until it is complete; bytes that can never
/// form a character become U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
}

impl StreamDecoder {
    /// A decoder; `special` renders control tokens as their text.
    pub fn new(special: bool) -> StreamDecoder {
        StreamDecoder {
            pending: Vec::new(),
            special,
        }
    }

    /// The bytes of an incomplete character held back for the next token (empty when the
    /// text so far ends on a character boundary).
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Adds one token and returns the text that became complete (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        let piece = tok.token_to_piece(id, self.special);
        self.push_bytes(&piece)
    }

    /// Adds raw bytes and returns the text that became complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix is valid UTF-8 by construction.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap());
                    match e.error_len() {
                        None => {
                            // Incomplete character at the end: keep it for the next token.
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    /// Flushes whatever is held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
