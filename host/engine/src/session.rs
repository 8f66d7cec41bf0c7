//! Sessions: a conversation's token history and KV cache.
//!
//! Appending tokens prefills only those tokens. A session can be snapshotted to bytes and
//! restored (the server persists them). **Context policy:** a session never exceeds its
//! context length; an append that would is refused with [`EngineError::ContextOverflow`] and
//! leaves the session unchanged — the caller decides what to drop (e.g. start a new session
//! from a shorter history, or [`Session::truncate`] and re-append).

use crate::error::{EngineError, Result};
use crate::exact_ops::LogitsDigest;
use crate::forward::{forward, forward_on, DeviceState, KvCache, LogitsFor, Scratch};
use crate::model::Model;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Options of a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Context length in tokens; 0 means the model's training context, capped at 4096.
    pub n_ctx: usize,
}

/// A token history with its KV cache.
///
/// The cache lives where the model's operators compute: on the host, or — when they offer one
/// ([`crate::Ops::device_session`]) — on their device, with only the outputs read back per
/// pass. Snapshots hold the cache in one host format either way, so a session moves between
/// backends.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    /// The device-resident state (activations and KV cache) when the operators have one; the
    /// host `cache` is then unused.
    device: Option<Box<dyn DeviceState>>,
    tokens: Vec<u32>,
    scratch: Scratch,
    n_ctx: usize,
    /// Logits after the last token (`vocab` values), if any token was processed.
    last_logits: Option<Vec<f32>>,
    /// Digest of every logits block computed since [`Session::enable_digest`] (off: `None`,
    /// and nothing is hashed).
    digest: Option<LogitsDigest>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tokens", &self.tokens.len())
            .field("n_ctx", &self.n_ctx)
            .finish()
    }
}

const MAGIC: &[u8; 8] = b"ENGRAMKV";
const VERSION: u32 = 1;

impl Session {
    /// An empty session over `model`.
    pub fn new(model: &Arc<Model>, opts: SessionOptions) -> Session {
        let n_ctx = if opts.n_ctx == 0 {
            model.config.ctx_train.min(4096)
        } else {
            opts.n_ctx
        };
        Session {
            model: model.clone(),
            cache: KvCache::new(model.config.n_layer),
            device: model.ops().device_session(model, n_ctx),
            tokens: Vec::new(),
            scratch: Scratch::default(),
            n_ctx,
            last_logits: None,
            digest: None,
        }
    }

    /// Starts (or restarts) a [`LogitsDigest`] of every logits block this session computes from
    /// now on: each prefill's and decode step's logits, in order. Off by default; it reads the
    /// logits and never changes them.
    pub fn enable_digest(&mut self) {
        self.digest = Some(LogitsDigest::new());
    }

    /// The logits digest, if [`Session::enable_digest`] was called.
    pub fn digest(&self) -> Option<&LogitsDigest> {
        self.digest.as_ref()
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
    /// The tokens processed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// The context length.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Logits after the last processed token.
    pub fn logits(&self) -> Option<&[f32]> {
        self.last_logits.as_deref()
    }
    /// Final hidden states (after the output norm) of the positions processed by the last
    /// call, `n × n_embd` row-major — what the memory ladder takes its latents from.
    pub fn hidden(&self) -> &[f32] {
        &self.scratch.hidden
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidArgument("no tokens to process".into()));
        }
        self.model.tokenizer().validate(tokens)?;
        if self.tokens.len() + tokens.len() > self.n_ctx {
            return Err(EngineError::ContextOverflow {
                have: self.tokens.len(),
                adding: tokens.len(),
                ctx: self.n_ctx,
            });
        }
        Ok(())
    }

    fn run(&mut self, tokens: &[u32], which: LogitsFor) -> Result<&[f32]> {
        self.check(tokens)?;
        match &mut self.device {
            None => forward(
                &self.model,
                self.model.ops(),
                &mut self.cache,
                tokens,
                which,
                &mut self.scratch,
            ),
            Some(dev) => {
                forward_on(&self.model, &mut **dev, tokens, which);
                dev.read_outputs(&mut self.scratch.hidden, &mut self.scratch.logits);
            }
        }
        self.tokens.extend_from_slice(tokens);
        if let Some(d) = &mut self.digest {
            d.update(&self.scratch.logits);
        }
        let v = self.model.config.vocab;
        let last = &self.scratch.logits[self.scratch.logits.len() - v..];
        match &mut self.last_logits {
            Some(l) => l.copy_from_slice(last),
            None => self.last_logits = Some(last.to_vec()),
        }
        Ok(&self.scratch.logits)
    }

    /// Appends `tokens` (one batched prefill of only these tokens) and returns the logits after
    /// the last one (`vocab` values).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.run(tokens, LogitsFor::Last)
    }

    /// Appends `tokens` and returns the logits after every one of them (`n × vocab`).
    pub fn prefill_all(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        self.run(tokens, LogitsFor::All)
    }

    /// Appends one token and returns the next-token logits.
    pub fn decode_step(&mut self, token: u32) -> Result<&[f32]> {
        self.run(&[token], LogitsFor::Last)
    }

    /// Forgets every token from position `len` on (the cache keeps the prefix).
    pub fn truncate(&mut self, len: usize) {
        if len < self.tokens.len() {
            self.tokens.truncate(len);
            self.cache.truncate(len);
            if let Some(dev) = &mut self.device {
                let keep = dev.kv_len().min(len);
                dev.set_kv_len(keep);
            }
            self.last_logits = None;
        }
    }

    /// Makes the session hold exactly `history`: keeps the longest common prefix with what it
    /// holds and prefills only the rest. Returns the number of tokens reused from the cache
    /// and the logits after the last token.
    pub fn sync(&mut self, history: &[u32]) -> Result<(usize, &[f32])> {
        let common = self.tokens.iter().zip(history).take_while(|(a, b)| a == b).count();
        // Re-run at least the last token so fresh logits exist.
        let keep = if common == history.len() {
            common.saturating_sub(1)
        } else {
            common
        };
        if history.is_empty() {
            return Err(EngineError::InvalidArgument("empty history".into()));
        }
        self.truncate(keep);
        self.prefill(&history[keep..])?;
        Ok((keep, self.last_logits.as_deref().unwrap()))
    }

    /// Serialises the session (tokens, KV cache, last logits) to bytes. The header names the
    /// model's fingerprint and shape so [`Session::restore`] refuses another model's snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        let c = &self.model.config;
        let kv_row = c.n_head_kv * c.head_dim;
        let n = self.tokens.len();
        let mut b = Vec::with_capacity(64 + n * 4 + 2 * c.n_layer * n * kv_row * 4 + c.vocab * 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.model.fingerprint());
        for v in [c.n_layer, c.n_head_kv, c.head_dim, c.vocab, self.n_ctx, n] {
            b.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for t in &self.tokens {
            b.extend_from_slice(&t.to_le_bytes());
        }
        let (mut dk, mut dv) = (Vec::new(), Vec::new());
        for l in 0..c.n_layer {
            let (k, v): (&[f32], &[f32]) = match &self.device {
                None => (&self.cache.k[l][..n * kv_row], &self.cache.v[l][..n * kv_row]),
                Some(dev) => {
                    dk.resize(n * kv_row, 0.0);
                    dv.resize(n * kv_row, 0.0);
                    dev.read_kv(l, n, &mut dk, &mut dv);
                    (&dk, &dv)
                }
            };
            for buf in [k, v] {
                for x in buf {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        match &self.last_logits {
            Some(l) => {
                b.push(1);
                for x in l {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
            None => b.push(0),
        }
        let digest: [u8; 32] = Sha256::digest(&b).into();
        b.extend_from_slice(&digest);
        b
    }

    /// Rebuilds a session from [`Session::snapshot`] bytes, refusing snapshots of another
    /// model, another format version, or corrupt data.
    pub fn restore(model: &Arc<Model>, bytes: &[u8]) -> Result<Session> {
        let err = |m: String| EngineError::Snapshot(m);
        if bytes.len() < 8 + 4 + 32 + 48 + 1 + 32 {
            return Err(err(format!(
                "{} bytes is too short to be a session snapshot",
                bytes.len()
            )));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(err("checksum mismatch: the snapshot is corrupt or truncated".into()));
        }
        if &body[..8] != MAGIC {
            return Err(err("not a session snapshot (bad magic)".into()));
        }
        let version = u32::from_le_bytes(body[8..12].try_into().unwrap());
        if version != VERSION {
            return Err(err(format!(
                "snapshot format version {version}, this build reads version {VERSION}"
            )));
        }
        if body[12..44] != model.fingerprint() {
            return Err(err("the snapshot was taken with a different model file".into()));
        }
        let mut pos = 44;
        let mut next_u64 = || {
            let v = u64::from_le_bytes(body[pos..pos + 8].try_into().unwrap());
            pos += 8;
            v as usize
        };
        let c = &model.config;
        let shape = [next_u64(), next_u64(), next_u64(), next_u64()];
        let (n_ctx, n) = (next_u64(), next_u64());
        if shape != [c.n_layer, c.n_head_kv, c.head_dim, c.vocab] {
            return Err(err(format!(
                "snapshot shape (layers, kv heads, head dim, vocab) {shape:?} does not match the model's {:?}",
                [c.n_layer, c.n_head_kv, c.head_dim, c.vocab]
            )));
        }
        if n > n_ctx || n_ctx > 1 << 24 {
            return Err(err(format!("snapshot holds {n} tokens for a context of {n_ctx}")));
        }
        let kv_row = c.n_head_kv * c.head_dim;
        let kv_bytes = 2 * c.n_layer * n * kv_row * 4;
        let expect = pos + n * 4 + kv_bytes + 1;
        if body.len() != expect && body.len() != expect + c.vocab * 4 {
            return Err(err(format!(
                "snapshot body is {} bytes, expected {expect} (+ logits)",
                body.len()
            )));
        }
        let mut s = Session::new(model, SessionOptions { n_ctx });
        s.tokens = body[pos..pos + n * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        model.tokenizer().validate(&s.tokens).map_err(|e| err(e.to_string()))?;
        pos += n * 4;
        let floats = |from: usize, count: usize| -> Vec<f32> {
            body[from..from + count * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        for l in 0..c.n_layer {
            s.cache.k[l] = floats(pos, n * kv_row);
            pos += n * kv_row * 4;
            s.cache.v[l] = floats(pos, n * kv_row);
            pos += n * kv_row * 4;
        }
        s.cache.len = n;
        if let Some(dev) = &mut s.device {
            for l in 0..c.n_layer {
                dev.write_kv(l, n, &s.cache.k[l], &s.cache.v[l]);
            }
            dev.set_kv_len(n);
            s.cache = KvCache::new(c.n_layer);
        }
        let has_logits = body[pos];
        pos += 1;
        match has_logits {
            1 if body.len() == pos + c.vocab * 4 => s.last_logits = Some(floats(pos, c.vocab)),
            0 if body.len() == pos => {}
            _ => return Err(err("bad logits section".into())),
        }
        Ok(s)
    }
}
