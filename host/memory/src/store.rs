//! [`MemoryStore`]: the sled-backed store that ties lines, cells, tiers and recall together.
//!
//! Layout of the one sled tree (all integers big-endian in keys, little-endian in values):
//!
//! | key | value |
//! |---|---|
//! | `L` seq | an encoded [`MemoryLine`] |
//! | `C` cell id | `slot ‖ line seq ‖ recorded_at ‖ ChaCha20-Poly1305(cell content)` |
//! | `V` address | `slot ‖ line seq ‖ stored_at ‖ ChaCha20-Poly1305(conversation)` |
//! | `S` count | a postcard-encoded [`Seal`] |
//! | `N` | next cell id ‖ next key slot |
//! | `P` | the postcard-encoded [`RecallPolicy`] |
//!
//! The keys of the encrypted records live in `keys.bin` beside the database (see
//! [`crate::shred`]); every derived structure (κ map, lexical index, ANN index) lives in
//! memory and is rebuilt from the records when the store opens.

use crate::ann::{dot, normalize, AnnConfig, AnnIndex};
use crate::cell::{norm_key, Cell, CellContent, CellId, Fact, Remembered, Source};
use crate::conversation::{ConversationContent, ExtractedFact, Gist, Turn, TurnHit, TurnInput};
use crate::embedder::TextEmbedder;
use crate::error::{MemoryError, Result};
use crate::hash::{from_hex32, hash_bytes, keyed_hash_parts, to_hex, Hash32};
use crate::lexical::{intersection_sorted, jaccard_sorted, key_tokens, token_vec, LexicalIndex};
use crate::line::{genesis_anchor, Kind, MemoryLine, Op};
use crate::recall::{Candidate, Features, RecallPolicy, Via};
use crate::shred::{self, KeyVault};
use crate::turns::{TurnIndex, TurnWeights};
use crate::value::TypedValue;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Settings of a store.
#[derive(Clone, Default)]
pub struct MemoryConfig {
    /// Key for keyed-BLAKE2b seals; with a key, a forger cannot rewrite history and reseal.
    pub seal_key: Option<Vec<u8>>,
    /// Embeds facts and queries given as text; without one, recall is lexical and κ-routed.
    pub embedder: Option<Arc<dyn TextEmbedder>>,
    /// When false, writes are not flushed before they return (faster, not crash-safe).
    /// Default (via [`MemoryConfig::durable`]) is true.
    pub no_sync: bool,
    /// ANN tuning.
    pub ann: AnnConfig,
    /// Ranking of conversation turns by `recall_turns`.
    pub turns: TurnWeights,
    /// Recall policy used when the store holds none (a store created by `import_atom`
    /// holds the imported one).
    pub policy: Option<RecallPolicy>,
}

impl MemoryConfig {
    /// Durable writes, no seal key, no embedder.
    pub fn durable() -> Self {
        Self::default()
    }

    /// Set the embedder.
    pub fn with_embedder(mut self, e: Arc<dyn TextEmbedder>) -> Self {
        self.embedder = Some(e);
        self
    }

    /// Set the seal key.
    pub fn with_seal_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.seal_key = Some(key.into());
        self
    }
}

impl std::fmt::Debug for MemoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryConfig")
            .field("seal_key", &self.seal_key.as_ref().map(|_| "<set>"))
            .field("embedder", &self.embedder.as_ref().map(|e| e.dim()))
            .field("no_sync", &self.no_sync)
            .field("ann", &self.ann)
            .field("turns", &self.turns)
            .field("policy", &self.policy)
            .finish()
    }
}

/// What `forget` erases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The cell (all versions of its κ) that version `id` belongs to.
    Id(CellId),
    /// All versions of κ = (subject, facet).
    Kappa {
        /// κ_coarse.
        subject: String,
        /// κ_fine.
        facet: String,
    },
    /// The current cell(s) best matching the text by token overlap (at least 60% of the
    /// query's content tokens, the words "forget"/"remove"/"erase" ignored); every version
    /// of each matched κ is erased.
    Query(String),
}

/// What `forget` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForgetReport {
    /// Content hashes of the erased cell versions (give one to `prove_forgotten`).
    pub forgotten: Vec<(CellId, Hash32)>,
    /// Conversations rewritten because facts or values were redacted from them.
    pub redacted_conversations: Vec<Hash32>,
}

/// The head of the chain at a point in time, optionally authenticated with the seal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Number of lines sealed.
    pub count: u64,
    /// Anchor of line `count - 1` (the genesis anchor when `count` is 0).
    pub head: Hash32,
    /// When the seal was taken (µs since the epoch).
    pub time: i64,
    /// Keyed BLAKE2b of (count, head, time) when a key was configured.
    pub mac: Option<Hash32>,
}

impl Seal {
    pub(crate) fn mac_for(key: &[u8], count: u64, head: &Hash32, time: i64) -> Hash32 {
        keyed_hash_parts(
            key,
            &[
                b"engram-seal",
                &count.to_le_bytes(),
                head,
                &time.to_le_bytes(),
            ],
        )
    }
}

/// A problem found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first bad memory line, when the problem is in (or is pinned to) a line.
    pub line: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines walked.
    pub lines: u64,
    /// Head anchor after the last good line.
    pub head: Hash32,
    /// Cell records decrypted and checked against their lines.
    pub cells: u64,
    /// Conversation records checked.
    pub conversations: u64,
    /// Stored seals checked.
    pub seals: u64,
    /// The first problem, or `None` when everything holds.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when the chain and every record hold.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Evidence that a content hash was forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetProof {
    /// The forget line recording the hash.
    pub line: MemoryLine,
    /// The chain verifies up to and including that line.
    pub chain_ok: bool,
    /// No live record has this content hash.
    pub no_live_content: bool,
    /// The record's key slot is zeroed in `keys.bin`.
    pub key_destroyed: bool,
}

impl ForgetProof {
    /// All three checks hold.
    pub fn holds(&self) -> bool {
        self.chain_ok && self.no_live_content && self.key_destroyed
    }
}

/// Counts for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Memory lines.
    pub lines: u64,
    /// κ with a current value.
    pub current_cells: usize,
    /// Stored versions (current + history).
    pub versions: usize,
    /// Distinct subjects.
    pub subjects: usize,
    /// Stored conversations.
    pub conversations: usize,
    /// Vectors in the ANN index.
    pub indexed_vectors: usize,
}

struct CellEntry {
    cell: Cell,
    slot: u64,
    content_hash: Hash32,
    tokens: Vec<String>,
}

impl CellEntry {
    /// The in-memory entry of a stored version; its lexical tokens cover subject, facet,
    /// value and statement.
    fn new(
        id: CellId,
        content: CellContent,
        recorded_at: i64,
        line_seq: u64,
        slot: u64,
        content_hash: Hash32,
    ) -> Self {
        Self {
            tokens: token_vec(&format!(
                "{} {} {} {}",
                content.subject, content.facet, content.value.raw, content.text
            )),
            cell: Cell {
                id,
                content,
                recorded_at,
                line_seq,
                valid_to: None,
            },
            slot,
            content_hash,
        }
    }
}

/// (normalised key, text to embed) pairs.
type LabelTexts<'a> = Vec<(String, &'a str)>;

/// Embeddings of newly seen subject names and facet labels.
#[derive(Default)]
struct Labels {
    subjects: Vec<(String, Vec<f32>)>,
    facets: Vec<(String, Vec<f32>)>,
}

struct ConvEntry {
    content: ConversationContent,
    slot: u64,
    content_hash: Hash32,
}

#[derive(Default)]
struct SubjectEntry {
    facets: Vec<String>,
    tokens: Vec<String>,
}

#[derive(Default)]
pub(crate) struct State {
    cells: HashMap<CellId, CellEntry>,
    kappa: HashMap<(String, String), Vec<CellId>>,
    subjects: HashMap<String, SubjectEntry>,
    subject_tokens: HashMap<String, Vec<String>>,
    lexical: LexicalIndex,
    ann: Option<AnnIndex>,
    convs: HashMap<Hash32, ConvEntry>,
    /// Every turn of every conversation, for `recall_turns`; memory only.
    turns: TurnIndex,
    reads: HashMap<CellId, u32>,
    /// Embedding of each subject's name (κ_coarse), for κ_fine scoring; memory only.
    subject_vecs: HashMap<String, Vec<f32>>,
    /// Embedding of each facet label (κ_fine), with the number of κ using it; memory only.
    facet_vecs: HashMap<String, (Vec<f32>, usize)>,
}

pub(crate) struct Writer {
    pub(crate) next_seq: u64,
    pub(crate) head: Hash32,
    pub(crate) next_id: u64,
    pub(crate) next_slot: u64,
}

/// The memory store. `Send + Sync`; every method takes `&self`.
pub struct MemoryStore {
    pub(crate) dir: PathBuf,
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) vault: KeyVault,
    pub(crate) cfg: MemoryConfig,
    pub(crate) policy: RwLock<RecallPolicy>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) state: RwLock<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub(crate) fn lkey(seq: u64) -> [u8; 9] {
    let mut k = [b'L'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn ckey(id: CellId) -> [u8; 9] {
    let mut k = [b'C'; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn vkey(addr: &Hash32) -> [u8; 33] {
    let mut k = [b'V'; 33];
    k[1..].copy_from_slice(addr);
    k
}

fn skey(count: u64) -> [u8; 9] {
    let mut k = [b'S'; 9];
    k[1..].copy_from_slice(&count.to_be_bytes());
    k
}

/// An encrypted record: header `slot ‖ seq ‖ time` then ciphertext (header and sled key
/// are authenticated as associated data).
pub(crate) fn encode_record(
    key: &[u8; 32],
    sled_key: &[u8],
    slot: u64,
    seq: u64,
    time: i64,
    plain: &[u8],
) -> Vec<u8> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&slot.to_le_bytes());
    header.extend_from_slice(&seq.to_le_bytes());
    header.extend_from_slice(&time.to_le_bytes());
    let aad = [sled_key, &header].concat();
    let mut out = header;
    out.extend_from_slice(&shred::seal(key, &aad, plain));
    out
}

pub(crate) struct RecordHeader {
    pub(crate) slot: u64,
    pub(crate) seq: u64,
    pub(crate) time: i64,
}

pub(crate) fn record_header(bytes: &[u8]) -> Option<RecordHeader> {
    if bytes.len() < 24 {
        return None;
    }
    Some(RecordHeader {
        slot: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
        seq: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
        time: i64::from_le_bytes(bytes[16..24].try_into().ok()?),
    })
}

pub(crate) fn open_record(key: &[u8; 32], sled_key: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
    let aad = [sled_key, &bytes[..24]].concat();
    shred::open(key, &aad, &bytes[24..])
}

/// How long [`open_db`] waits for the database's file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Open the sled database at `path`, waiting up to [`LOCK_WAIT`] for its file lock: sled
/// releases the lock from its flusher thread shortly *after* the last handle is dropped, so a
/// store reopened in the same process (a restart of the services, a test) can find it still
/// held for a few milliseconds. A lock held longer is another live store — most likely another
/// process — and is reported as such.
fn open_db(path: &Path) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(MemoryError::io(
                        path,
                        std::io::Error::other(format!(
                            "the memory store is in use (its lock is held: {e}); stop the other \
                             engram process using this data folder, or pass another --data"
                        )),
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

fn default_text(subject: &str, facet: &str, value: &str) -> String {
    format!("{subject} {facet}: {value}")
}

impl MemoryStore {
    /// Open (or create) the store in `dir`: `dir/db` (sled) and `dir/keys.bin`.
    pub fn open(dir: impl AsRef<Path>, cfg: MemoryConfig) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| MemoryError::io(&dir, e))?;
        let db = open_db(&dir.join("db"))?;
        let tree = db.open_tree("memory")?;
        let vault = KeyVault::open(&dir.join("keys.bin"))?;
        let stored_policy = match tree.get(b"P")? {
            Some(b) => Some(
                postcard::from_bytes::<RecallPolicy>(&b)
                    .map_err(|e| MemoryError::Corrupt(format!("stored recall policy: {e}")))?,
            ),
            None => None,
        };
        let policy = stored_policy.or(cfg.policy).unwrap_or_default();
        let (next_seq, head) = match tree.scan_prefix(b"L").next_back() {
            Some(kv) => {
                let (_, v) = kv?;
                let line = MemoryLine::decode(&v)?;
                (line.seq + 1, line.anchor)
            }
            None => (0, genesis_anchor()),
        };
        let (mut next_id, mut next_slot) = match tree.get(b"N")? {
            Some(b) if b.len() == 16 => (
                u64::from_le_bytes(b[..8].try_into().unwrap()),
                u64::from_le_bytes(b[8..].try_into().unwrap()),
            ),
            Some(_) => {
                return Err(MemoryError::Corrupt(
                    "counter record N has the wrong length".into(),
                ))
            }
            None => (0, 0),
        };
        let store = Self {
            dir,
            db,
            tree,
            vault,
            cfg,
            policy: RwLock::new(policy),
            writer: Mutex::new(Writer {
                next_seq,
                head,
                next_id: 0,
                next_slot: 0,
            }),
            state: RwLock::new(State::default()),
        };
        let (max_id, max_slot) = store.load()?;
        next_id = next_id.max(max_id);
        next_slot = next_slot.max(max_slot);
        {
            let mut w = store.writer.lock().unwrap();
            w.next_id = next_id;
            w.next_slot = next_slot;
        }
        store.backfill_embeddings()?;
        Ok(store)
    }

    /// Load every record into memory, shredding keys no record references (left by a crash
    /// between a forget's database write and its key destruction). Returns (next id, next slot).
    pub(crate) fn load(&self) -> Result<(u64, u64)> {
        let keys = self.vault.read_all()?;
        let mut referenced = HashSet::new();
        let mut st = self.state.write().unwrap();
        let mut versions: Vec<CellEntry> = Vec::new();
        let (mut max_id, mut max_slot) = (0u64, 0u64);
        for kv in self.tree.scan_prefix(b"C") {
            let (k, v) = kv?;
            let id = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| MemoryError::Corrupt("malformed cell key".into()))?;
            let h = record_header(&v)
                .ok_or_else(|| MemoryError::Corrupt(format!("cell {id}: record too short")))?;
            let key = shred::key_from(&keys, h.slot).ok_or_else(|| {
                MemoryError::Corrupt(format!("cell {id}: its key slot {} is empty", h.slot))
            })?;
            let plain = open_record(&key, &k, &v).ok_or_else(|| {
                MemoryError::Corrupt(format!("cell {id}: record does not authenticate"))
            })?;
            let content: CellContent = postcard::from_bytes(&plain).map_err(|e| {
                MemoryError::Corrupt(format!("cell {id}: content does not decode: {e}"))
            })?;
            referenced.insert(h.slot);
            max_id = max_id.max(id + 1);
            max_slot = max_slot.max(h.slot + 1);
            let content_hash = hash_bytes(&plain);
            versions.push(CellEntry::new(
                id,
                content,
                h.time,
                h.seq,
                h.slot,
                content_hash,
            ));
        }
        versions.sort_by_key(|e| e.cell.line_seq);
        for e in versions {
            st.insert_version(e, self.cfg.ann);
        }
        for kv in self.tree.scan_prefix(b"V") {
            let (k, v) = kv?;
            let addr: Hash32 = k[1..]
                .try_into()
                .map_err(|_| MemoryError::Corrupt("conversation key".into()))?;
            let h = record_header(&v)
                .ok_or_else(|| MemoryError::Corrupt("conversation record too short".into()))?;
            let key = shred::key_from(&keys, h.slot).ok_or_else(|| {
                MemoryError::Corrupt(format!("conversation {}: key slot empty", to_hex(&addr)))
            })?;
            let plain = open_record(&key, &k, &v).ok_or_else(|| {
                MemoryError::Corrupt(format!(
                    "conversation {}: does not authenticate",
                    to_hex(&addr)
                ))
            })?;
            let content = ConversationContent::decode(&plain)
                .map_err(|e| MemoryError::Corrupt(format!("conversation: {e}")))?;
            referenced.insert(h.slot);
            max_slot = max_slot.max(h.slot + 1);
            st.turns.insert(addr, &content.turns, self.cfg.ann);
            st.convs.insert(
                addr,
                ConvEntry {
                    content_hash: hash_bytes(&plain),
                    content,
                    slot: h.slot,
                },
            );
        }
        if let Some(ann) = st.ann.as_mut() {
            if ann.needs_rebuild() {
                ann.rebuild();
            }
        }
        st.turns.maintain();
        drop(st);
        let slots = keys.len() as u64 / shred::SLOT_BYTES;
        let mut shredded = 0;
        for slot in 0..slots {
            if !referenced.contains(&slot) && shred::key_from(&keys, slot).is_some() {
                self.vault.destroy(slot)?;
                shredded += 1;
            }
        }
        if shredded > 0 {
            self.vault.sync()?;
            tracing::info!(
                shredded,
                "destroyed keys no record references (interrupted forget or write)"
            );
        }
        Ok((max_id, max_slot))
    }

    /// Embed current cells stored without an embedding, when an embedder is configured.
    fn backfill_embeddings(&self) -> Result<()> {
        // Cells written without an embedder keep an empty embedding in their (immutable,
        // hashed) content; they are embedded in memory only, so their hash never changes.
        let Some(emb) = self.cfg.embedder.clone() else {
            return Ok(());
        };
        let kappas: Vec<(String, String)> = {
            let st = self.state.read().unwrap();
            st.kappa
                .values()
                .filter_map(|v| v.last())
                .map(|id| {
                    let c = &st.cells[id].cell.content;
                    (c.subject.clone(), c.facet.clone())
                })
                .collect()
        };
        let labels = self.embed_new_labels(kappas.iter().map(|(s, f)| (s.as_str(), f.as_str())))?;
        self.state.write().unwrap().add_labels(labels);
        let todo: Vec<(CellId, String)> = {
            let st = self.state.read().unwrap();
            st.kappa
                .values()
                .filter_map(|v| v.last())
                .filter(|id| st.ann.as_ref().is_none_or(|a| a.vector(**id).is_none()))
                .map(|id| (*id, st.cells[id].cell.content.text.clone()))
                .collect()
        };
        for chunk in todo.chunks(256) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let vecs = emb.embed_batch(&texts);
            let mut st = self.state.write().unwrap();
            for ((id, _), mut v) in chunk.iter().zip(vecs) {
                normalize(&mut v);
                st.ann_insert(*id, &v, self.cfg.ann)?;
            }
        }
        Ok(())
    }

    /// Embed the subject names and facet labels not seen before (κ_fine scoring needs
    /// them). Returns (subjects, facets) as (normalised key, vector) pairs.
    fn embed_new_labels<'a>(
        &self,
        kappas: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Labels> {
        if self.cfg.embedder.is_none() {
            return Ok(Labels::default());
        }
        let (mut subjects, mut facets): (LabelTexts, LabelTexts) = (Vec::new(), Vec::new());
        {
            let st = self.state.read().unwrap();
            let (mut seen_s, mut seen_f) = (HashSet::new(), HashSet::new());
            for (s, f) in kappas {
                let (ns, nf) = (norm_key(s), norm_key(f));
                if !st.subject_vecs.contains_key(&ns) && seen_s.insert(ns.clone()) {
                    subjects.push((ns, s.trim()));
                }
                if !st.facet_vecs.contains_key(&nf) && seen_f.insert(nf.clone()) {
                    facets.push((nf, f.trim()));
                }
            }
        }
        let texts: Vec<&str> = subjects
            .iter()
            .chain(facets.iter())
            .map(|(_, t)| *t)
            .collect();
        if texts.is_empty() {
            return Ok(Labels::default());
        }
        let mut vecs = self.embed_texts(&texts)?.into_iter();
        Ok(Labels {
            subjects: subjects
                .into_iter()
                .map(|(k, _)| (k, vecs.next().unwrap_or_default()))
                .collect(),
            facets: facets
                .into_iter()
                .map(|(k, _)| (k, vecs.next().unwrap_or_default()))
                .collect(),
        })
    }

    /// The folder of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The recall policy in force.
    pub fn policy(&self) -> RecallPolicy {
        *self.policy.read().unwrap()
    }

    /// Store a new recall policy (carried by `.atom` exports).
    pub fn set_policy(&self, p: RecallPolicy) -> Result<()> {
        let b = postcard::to_allocvec(&p).expect("policy serialises");
        self.tree.insert(b"P", b)?;
        self.sync_db()?;
        *self.policy.write().unwrap() = p;
        Ok(())
    }

    fn sync_db(&self) -> Result<()> {
        if !self.cfg.no_sync {
            self.db.flush()?;
        }
        Ok(())
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let Some(emb) = &self.cfg.embedder else {
            return Ok(vec![Vec::new(); texts.len()]);
        };
        let out = emb.embed_batch(texts);
        if out.len() != texts.len() {
            return Err(MemoryError::Embedding(format!(
                "{} vectors for {} texts",
                out.len(),
                texts.len()
            )));
        }
        Ok(out)
    }

    /// Stage `line` and the record it wrote in `batch`: the record (at sled key
    /// `record_key`) is encrypted under a fresh key kept in key slot `slot`.
    fn stage_record(
        &self,
        batch: &mut sled::Batch,
        line: &MemoryLine,
        record_key: &[u8],
        slot: u64,
        plain: &[u8],
    ) -> Result<()> {
        batch.insert(&lkey(line.seq), line.encode());
        let key = KeyVault::fresh_key()?;
        self.vault.put(slot, &key)?;
        batch.insert(
            record_key,
            encode_record(&key, record_key, slot, line.seq, line.timestamp, plain),
        );
        Ok(())
    }

    /// Write `batch` with the id/slot counters: the new keys are synced first, then the
    /// batch is applied and flushed (unless `no_sync`).
    fn commit_batch(&self, mut batch: sled::Batch, next_id: u64, next_slot: u64) -> Result<()> {
        let mut counters = next_id.to_le_bytes().to_vec();
        counters.extend_from_slice(&next_slot.to_le_bytes());
        batch.insert(b"N", counters);
        if !self.cfg.no_sync {
            self.vault.sync()?;
        }
        self.tree.apply_batch(batch)?;
        self.sync_db()
    }

    /// Remember one fact (durable when the call returns).
    pub fn remember(&self, fact: Fact) -> Result<Remembered> {
        Ok(self.remember_batch(vec![fact])?[0])
    }

    /// Remember many facts with one flush: all are durable when the call returns, and a
    /// crash before that loses the whole batch, never part of it.
    pub fn remember_batch(&self, mut facts: Vec<Fact>) -> Result<Vec<Remembered>> {
        for f in &facts {
            if norm_key(&f.subject).is_empty() || norm_key(&f.facet).is_empty() {
                return Err(MemoryError::Invalid(
                    "a fact needs a non-empty subject and facet".into(),
                ));
            }
            if f.value.trim().is_empty() {
                return Err(MemoryError::Invalid(format!(
                    "empty value for ({}, {}); use forget to remove a fact",
                    f.subject, f.facet
                )));
            }
            if f.subject.len()
                + f.facet.len()
                + f.value.len()
                + f.text.as_ref().map_or(0, String::len)
                > 60_000
            {
                return Err(MemoryError::Invalid("fact larger than 60,000 bytes".into()));
            }
        }
        for f in facts.iter_mut() {
            if f.text.as_ref().is_none_or(|t| t.trim().is_empty()) {
                f.text = Some(default_text(
                    f.subject.trim(),
                    f.facet.trim(),
                    &TypedValue::parse(&f.value).raw,
                ));
            }
        }
        let need: Vec<usize> = (0..facts.len())
            .filter(|&i| facts[i].embedding.is_none())
            .collect();
        if !need.is_empty() {
            let texts: Vec<&str> = need
                .iter()
                .map(|&i| facts[i].text.as_deref().unwrap())
                .collect();
            let vecs = self.embed_texts(&texts)?;
            for (i, v) in need.into_iter().zip(vecs) {
                facts[i].embedding = Some(v);
            }
        }
        let labels =
            self.embed_new_labels(facts.iter().map(|f| (f.subject.as_str(), f.facet.as_str())))?;
        let now = now_micros();
        let mut w = self.writer.lock().unwrap();
        let mut outcomes = Vec::with_capacity(facts.len());
        let mut batch = sled::Batch::default();
        let mut new_entries: Vec<CellEntry> = Vec::new();
        let (mut seq, mut head, mut next_id, mut next_slot) =
            (w.next_seq, w.head, w.next_id, w.next_slot);
        {
            let st = self.state.read().unwrap();
            // κ → (current normalised value, id) for facts earlier in this batch.
            let mut pending: HashMap<(String, String), (String, CellId)> = HashMap::new();
            for f in facts {
                let kappa = (norm_key(&f.subject), norm_key(&f.facet));
                let value = TypedValue::parse(&f.value);
                let current = pending.get(&kappa).cloned().or_else(|| {
                    st.kappa
                        .get(&kappa)
                        .and_then(|v| v.last())
                        .map(|id| (st.cells[id].cell.content.value.normalized.clone(), *id))
                });
                if let Some((norm, id)) = &current {
                    if *norm == value.normalized {
                        outcomes.push(Remembered::Unchanged(*id));
                        continue;
                    }
                }
                let mut embedding = f.embedding.unwrap_or_default();
                if !embedding.is_empty() {
                    if let Some(a) = &st.ann {
                        if a.dim() != embedding.len() {
                            return Err(MemoryError::Embedding(format!(
                                "embedding of width {} for a store of width {}",
                                embedding.len(),
                                a.dim()
                            )));
                        }
                    }
                    normalize(&mut embedding);
                }
                let content = CellContent {
                    subject: f.subject.trim().to_string(),
                    facet: f.facet.trim().to_string(),
                    value,
                    text: f.text.unwrap_or_default(),
                    source: f.source.clone(),
                    valid_from: f.valid_from.unwrap_or(now),
                    embedding,
                };
                let id = next_id;
                next_id += 1;
                let slot = next_slot;
                next_slot += 1;
                let plain = content.canonical_bytes();
                let content_hash = hash_bytes(&plain);
                let op = if current.is_some() {
                    Op::Supersede
                } else {
                    Op::Remember
                };
                let line = MemoryLine::new(
                    seq,
                    op,
                    Kind::Cell,
                    id.to_string(),
                    content_hash,
                    f.source.ctx(),
                    now,
                    &head,
                );
                head = line.anchor;
                self.stage_record(&mut batch, &line, &ckey(id), slot, &plain)?;
                outcomes.push(match current {
                    Some((_, previous)) => Remembered::Superseded { id, previous },
                    None => Remembered::Created(id),
                });
                pending.insert(kappa, (content.value.normalized.clone(), id));
                new_entries.push(CellEntry::new(id, content, now, seq, slot, content_hash));
                seq += 1;
            }
        }
        if new_entries.is_empty() {
            return Ok(outcomes);
        }
        self.commit_batch(batch, next_id, next_slot)?;
        {
            let mut st = self.state.write().unwrap();
            for e in new_entries {
                st.insert_version(e, self.cfg.ann);
            }
            st.add_labels(labels);
        }
        w.next_seq = seq;
        w.head = head;
        w.next_id = next_id;
        w.next_slot = next_slot;
        Ok(outcomes)
    }

    /// The version of κ that held at valid time `as_of` (µs; `None` = now), if any.
    pub fn get(&self, subject: &str, facet: &str, as_of: Option<i64>) -> Option<Cell> {
        let st = self.state.read().unwrap();
        let versions = st.kappa.get(&(norm_key(subject), norm_key(facet)))?;
        match as_of {
            None => versions.last().map(|id| st.cell_with_valid_to(*id)),
            Some(t) => versions
                .iter()
                .rev()
                .map(|id| st.cell_with_valid_to(*id))
                .find(|c| c.holds_at(t)),
        }
    }

    /// Every version of κ, oldest first, with `valid_to` filled in.
    pub fn history(&self, subject: &str, facet: &str) -> Vec<Cell> {
        let st = self.state.read().unwrap();
        st.kappa
            .get(&(norm_key(subject), norm_key(facet)))
            .map(|v| v.iter().map(|id| st.cell_with_valid_to(*id)).collect())
            .unwrap_or_default()
    }

    /// The version with id `id` (current or history).
    pub fn cell(&self, id: CellId) -> Option<Cell> {
        let st = self.state.read().unwrap();
        st.cells
            .contains_key(&id)
            .then(|| st.cell_with_valid_to(id))
    }

    /// Current cells (one per κ), ordered by subject then facet.
    pub fn list(&self) -> Vec<Cell> {
        let st = self.state.read().unwrap();
        let mut keys: Vec<&(String, String)> = st.kappa.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| st.kappa[k].last())
            .map(|id| st.cell_with_valid_to(*id))
            .collect()
    }

    /// The exact, order-independent signature of the current cells (see
    /// [`crate::signature`]): equal for two stores that hold the same facts, however and in
    /// whatever order they learned them.
    pub fn state_signature(&self) -> crate::signature::StateSignature {
        crate::signature::StateSignature::of(&self.list())
    }

    /// Counts of what the store holds.
    pub fn stats(&self) -> Stats {
        let lines = self.writer.lock().unwrap().next_seq;
        let st = self.state.read().unwrap();
        Stats {
            lines,
            current_cells: st.kappa.len(),
            versions: st.cells.len(),
            subjects: st.subjects.len(),
            conversations: st.convs.len(),
            indexed_vectors: st.ann.as_ref().map_or(0, AnnIndex::len),
        }
    }

    /// Erase the content selected (every version, its embedding and index entries, and
    /// its traces in stored conversations). The log keeps only the content hashes.
    pub fn forget(&self, selector: Selector) -> Result<ForgetReport> {
        let mut w = self.writer.lock().unwrap();
        let now = now_micros();
        let (victims, conv_updates) = {
            let st = self.state.read().unwrap();
            let kappas = st.select(&selector);
            let mut victims: Vec<(CellId, u64, Hash32, String)> = Vec::new();
            for k in &kappas {
                for id in &st.kappa[k] {
                    let e = &st.cells[id];
                    victims.push((
                        *id,
                        e.slot,
                        e.content_hash,
                        e.cell.content.value.raw.clone(),
                    ));
                }
            }
            let ids: HashSet<CellId> = victims.iter().map(|v| v.0).collect();
            let values: Vec<String> = victims.iter().map(|v| v.3.clone()).collect();
            let mut updates = Vec::new();
            for (addr, c) in &st.convs {
                if let Some(new) = redact(&c.content, &ids, &values) {
                    updates.push((*addr, c.slot, new));
                }
            }
            (victims, updates)
        };
        if victims.is_empty() {
            return Err(MemoryError::NotFound(format!(
                "no cell matches {selector:?}"
            )));
        }
        let mut conv_updates = conv_updates;
        // Re-embed redacted summaries: the old embedding was computed from the erased text.
        for (_, _, c) in conv_updates.iter_mut() {
            c.summary_embedding = self
                .embed_texts(&[c.summary.as_str()])?
                .pop()
                .unwrap_or_default();
            self.embed_turns(&mut c.turns)?;
        }
        let mut batch = sled::Batch::default();
        let (mut seq, mut head, mut next_slot) = (w.next_seq, w.head, w.next_slot);
        let mut report = ForgetReport::default();
        for (id, slot, hash, _) in &victims {
            let line = MemoryLine::new(
                seq,
                Op::Forget,
                Kind::Cell,
                id.to_string(),
                *hash,
                format!("slot={slot}"),
                now,
                &head,
            );
            head = line.anchor;
            batch.insert(&lkey(seq), line.encode());
            batch.remove(&ckey(*id));
            seq += 1;
            report.forgotten.push((*id, *hash));
        }
        let mut new_convs = Vec::new();
        for (addr, old_slot, content) in conv_updates {
            let plain = content.canonical_bytes();
            let hash = hash_bytes(&plain);
            let slot = next_slot;
            next_slot += 1;
            let line = MemoryLine::new(
                seq,
                Op::Redact,
                Kind::Conversation,
                to_hex(&addr),
                hash,
                format!("slot={old_slot}"),
                now,
                &head,
            );
            head = line.anchor;
            self.stage_record(&mut batch, &line, &vkey(&addr), slot, &plain)?;
            new_convs.push((
                addr,
                old_slot,
                ConvEntry {
                    content,
                    slot,
                    content_hash: hash,
                },
            ));
            report.redacted_conversations.push(addr);
            seq += 1;
        }
        let next_id = w.next_id;
        let mut counters = next_id.to_le_bytes().to_vec();
        counters.extend_from_slice(&next_slot.to_le_bytes());
        batch.insert(b"N", counters);
        self.vault.sync()?;
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        // Only now destroy the old keys: a crash before this point leaves them unreferenced,
        // and `open` shreds unreferenced keys.
        for (_, slot, _, _) in &victims {
            self.vault.destroy(*slot)?;
        }
        for (_, old_slot, _) in &new_convs {
            self.vault.destroy(*old_slot)?;
        }
        self.vault.sync()?;
        {
            let mut st = self.state.write().unwrap();
            for (id, ..) in &victims {
                st.remove_version(*id);
            }
            for (addr, _, entry) in new_convs {
                st.turns.insert(addr, &entry.content.turns, self.cfg.ann);
                st.convs.insert(addr, entry);
            }
        }
        w.next_seq = seq;
        w.head = head;
        w.next_slot = next_slot;
        Ok(report)
    }

    /// Show that `hash` was forgotten: its forget line, the chain up to it, no live record
    /// with that content, and the record's key destroyed.
    pub fn prove_forgotten(&self, hash: &Hash32) -> Result<ForgetProof> {
        let mut prev = genesis_anchor();
        let mut chain_ok = true;
        let mut found = None;
        for kv in self.tree.scan_prefix(b"L") {
            let (_, v) = kv?;
            let line = MemoryLine::decode(&v)?;
            if line.compute_anchor(&prev) != line.anchor {
                chain_ok = false;
            }
            prev = line.anchor;
            if line.op == Op::Forget && line.content_hash == *hash {
                found = Some(line);
                break;
            }
        }
        let line = found.ok_or_else(|| {
            MemoryError::NotFound(format!("no forget line for content hash {}", to_hex(hash)))
        })?;
        let st = self.state.read().unwrap();
        let no_live_content = st.cells.values().all(|e| e.content_hash != *hash)
            && st.convs.values().all(|c| c.content_hash != *hash);
        let slot: Option<u64> = line.ctx.strip_prefix("slot=").and_then(|s| s.parse().ok());
        let key_destroyed = match slot {
            Some(s) => self.vault.get(s)?.is_none(),
            None => false,
        };
        Ok(ForgetProof {
            line,
            chain_ok,
            no_live_content,
            key_destroyed,
        })
    }
}

impl MemoryStore {
    /// Store a whole conversation in the long tier; returns its address, BLAKE2b-256 of
    /// the transcript. Storing the same transcript again is idempotent. Each non-empty
    /// line of the transcript is kept as a turn (`Speaker: text` gives the speaker when
    /// the name before the colon is short), so `recall_turns` can find it.
    pub fn store_conversation(
        &self,
        transcript: &str,
        summary: &str,
        facts: Vec<ExtractedFact>,
        source: &Source,
    ) -> Result<Hash32> {
        let turns = transcript
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (speaker, text) = match l.split_once(':') {
                    Some((s, t))
                        if !s.trim().is_empty()
                            && s.split_whitespace().count() <= 3
                            && !t.trim().is_empty() =>
                    {
                        (s.trim(), t.trim())
                    }
                    _ => ("", l.trim()),
                };
                TurnInput {
                    label: String::new(),
                    speaker: speaker.to_string(),
                    text: text.to_string(),
                    time: None,
                }
            })
            .collect();
        self.store_conversation_with_turns(transcript, turns, summary, facts, source)
    }

    /// Store a conversation given turn by turn: the transcript is one `Speaker: text`
    /// line per turn. Returns its address (BLAKE2b-256 of that transcript).
    pub fn store_turns(
        &self,
        turns: Vec<TurnInput>,
        summary: &str,
        facts: Vec<ExtractedFact>,
        source: &Source,
    ) -> Result<Hash32> {
        let transcript: String = turns
            .iter()
            .map(|t| {
                if t.speaker.is_empty() {
                    format!("{}\n", t.text.trim())
                } else {
                    format!("{}: {}\n", t.speaker.trim(), t.text.trim())
                }
            })
            .collect();
        self.store_conversation_with_turns(&transcript, turns, summary, facts, source)
    }

    /// Embed every turn's indexed text (no-op without an embedder).
    fn embed_turns(&self, turns: &mut [Turn]) -> Result<()> {
        if self.cfg.embedder.is_none() || turns.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = turns.iter().map(Turn::indexed_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut all = Vec::with_capacity(turns.len());
        for chunk in refs.chunks(64) {
            all.extend(self.embed_texts(chunk)?);
        }
        for (t, mut v) in turns.iter_mut().zip(all) {
            normalize(&mut v);
            t.embedding = v;
        }
        Ok(())
    }

    fn store_conversation_with_turns(
        &self,
        transcript: &str,
        turns: Vec<TurnInput>,
        summary: &str,
        facts: Vec<ExtractedFact>,
        source: &Source,
    ) -> Result<Hash32> {
        if transcript.trim().is_empty() {
            return Err(MemoryError::Invalid("empty conversation transcript".into()));
        }
        let addr = hash_bytes(transcript.as_bytes());
        if self.state.read().unwrap().convs.contains_key(&addr) {
            return Ok(addr);
        }
        let summary_embedding = self.embed_texts(&[summary])?.pop().unwrap_or_default();
        let mut turns: Vec<Turn> = turns
            .into_iter()
            .enumerate()
            .map(|(i, t)| Turn {
                label: if t.label.is_empty() {
                    i.to_string()
                } else {
                    t.label
                },
                speaker: t.speaker.trim().to_string(),
                text: t.text.trim().to_string(),
                time: t.time,
                embedding: Vec::new(),
            })
            .collect();
        self.embed_turns(&mut turns)?;
        let content = ConversationContent {
            transcript: transcript.to_string(),
            summary: summary.to_string(),
            facts,
            summary_embedding,
            redactions: 0,
            turns,
        };
        let plain = content.canonical_bytes();
        let hash = hash_bytes(&plain);
        let now = now_micros();
        let mut w = self.writer.lock().unwrap();
        if self.state.read().unwrap().convs.contains_key(&addr) {
            return Ok(addr);
        }
        let seq = w.next_seq;
        let line = MemoryLine::new(
            seq,
            Op::Conversation,
            Kind::Conversation,
            to_hex(&addr),
            hash,
            source.ctx(),
            now,
            &w.head,
        );
        let slot = w.next_slot;
        let mut batch = sled::Batch::default();
        self.stage_record(&mut batch, &line, &vkey(&addr), slot, &plain)?;
        self.commit_batch(batch, w.next_id, slot + 1)?;
        {
            let mut st = self.state.write().unwrap();
            st.turns.insert(addr, &content.turns, self.cfg.ann);
            st.convs.insert(
                addr,
                ConvEntry {
                    content,
                    slot,
                    content_hash: hash,
                },
            );
        }
        w.next_seq = seq + 1;
        w.head = line.anchor;
        w.next_slot = slot + 1;
        Ok(addr)
    }

    /// Gists of the `k` stored conversations most relevant to the query (cosine of the
    /// summary embedding when both exist, plus token overlap with the summary).
    pub fn recall_conversations(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        k: usize,
    ) -> Vec<Gist> {
        let q_tokens = token_vec(query);
        let st = self.state.read().unwrap();
        let mut gists: Vec<Gist> = st
            .convs
            .iter()
            .map(|(addr, c)| {
                let lex = jaccard_sorted(&q_tokens, &token_vec(&c.content.summary));
                let cos = match query_embedding {
                    Some(q) if q.len() == c.content.summary_embedding.len() => {
                        dot(q, &c.content.summary_embedding)
                    }
                    _ => 0.0,
                };
                Gist {
                    addr: *addr,
                    summary: c.content.summary.clone(),
                    fact_count: c.content.facts.len(),
                    score: cos.max(lex),
                }
            })
            .filter(|g| g.score > 0.0)
            .collect();
        gists.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.addr.cmp(&b.addr)));
        gists.truncate(k);
        gists
    }

    /// The `k` stored turns that best answer the query, across all conversations: the
    /// turn index's own ANN candidates and BM25 candidates, ranked by cosine + BM25 +
    /// context (neighbouring turns) + speaker named (weights in [`MemoryConfig::turns`]).
    pub fn recall_turns(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        k: usize,
    ) -> Vec<TurnHit> {
        self.recall_turns_with(query, query_embedding, k, &self.cfg.turns)
    }

    /// [`MemoryStore::recall_turns`] with other ranking weights (a policy's own, or an
    /// ablation: all zero ranks by the embedding alone).
    pub fn recall_turns_with(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        k: usize,
        weights: &TurnWeights,
    ) -> Vec<TurnHit> {
        if self.state.read().unwrap().turns.needs_rebuild() {
            self.state.write().unwrap().turns.maintain();
        }
        let st = self.state.read().unwrap();
        st.turns
            .search(query, query_embedding, k, weights)
            .into_iter()
            .filter_map(|s| {
                let (addr, index) = st.turns.locate(s.id)?;
                let t = st.convs.get(&addr)?.content.turns.get(index)?;
                Some(TurnHit {
                    addr,
                    index,
                    label: t.label.clone(),
                    speaker: t.speaker.clone(),
                    text: t.text.clone(),
                    time: t.time,
                    similarity: s.similarity,
                    lexical: s.lexical,
                    context: s.context,
                    speaker_match: s.speaker_match,
                    score: s.score,
                })
            })
            .collect()
    }

    /// The full stored conversation at `addr`.
    pub fn read_conversation(&self, addr: &Hash32) -> Option<ConversationContent> {
        self.state
            .read()
            .unwrap()
            .convs
            .get(addr)
            .map(|c| c.content.clone())
    }

    /// Embed a query with the configured embedder (`None` without one).
    pub fn embed_query(&self, text: &str) -> Option<Vec<f32>> {
        let e = self.cfg.embedder.as_ref()?;
        let mut v = e.embed_batch(&[text]).pop()?;
        normalize(&mut v);
        Some(v)
    }

    /// Recall candidates for a query: the κ_coarse cascade (subjects the query names or
    /// whose cells the ANN index finds, each read through a bounded window of
    /// `policy.window` cells), the ANN index over all current cells, and the exact lexical
    /// anchor. Each candidate carries its [`Features`]; the list is ranked by the concert
    /// score (see [`crate::recall::Concert`]) and cut to `k`.
    pub fn recall(
        &self,
        query_text: &str,
        query_embedding: Option<&[f32]>,
        k: usize,
    ) -> Vec<Candidate> {
        let policy = self.policy();
        let mut cands = self.candidates(query_text, query_embedding, &policy);
        cands.truncate(k);
        if !cands.is_empty() {
            let mut st = self.state.write().unwrap();
            for c in &cands {
                *st.reads.entry(c.cell.id).or_insert(0) += 1;
            }
        }
        cands
    }

    /// Nearest current cells to `q` through the ANN index (cosine, best first).
    pub fn nearest(&self, q: &[f32], k: usize) -> Vec<(CellId, f32)> {
        self.maintain_index();
        self.state
            .read()
            .unwrap()
            .ann
            .as_ref()
            .map_or_else(Vec::new, |a| a.search(q, k))
    }

    /// Nearest current cells to `q` by exhaustive scan: the reference the ANN index is
    /// measured against.
    pub fn nearest_exact(&self, q: &[f32], k: usize) -> Vec<(CellId, f32)> {
        self.state
            .read()
            .unwrap()
            .ann
            .as_ref()
            .map_or_else(Vec::new, |a| a.search_exact(q, k))
    }

    /// Rebuild the ANN index now if writes have outgrown it (recall also does this lazily).
    pub fn maintain_index(&self) {
        let needs = self
            .state
            .read()
            .unwrap()
            .ann
            .as_ref()
            .is_some_and(AnnIndex::needs_rebuild);
        if needs {
            if let Some(a) = self.state.write().unwrap().ann.as_mut() {
                a.rebuild();
            }
        }
    }

    fn candidates(
        &self,
        query_text: &str,
        q: Option<&[f32]>,
        policy: &RecallPolicy,
    ) -> Vec<Candidate> {
        self.maintain_index();
        let now = now_micros();
        let q_tokens = token_vec(query_text);
        let st = self.state.read().unwrap();
        let q = q.filter(|q| st.ann.as_ref().is_some_and(|a| a.dim() == q.len()));
        let mut via: HashMap<CellId, u8> = HashMap::new();
        // 1. ANN over every current cell.
        let mut ann_subjects = Vec::new();
        if let (Some(q), Some(ann)) = (q, st.ann.as_ref()) {
            for (i, (id, _)) in ann.search(q, policy.ann_candidates).into_iter().enumerate() {
                *via.entry(id).or_default() |= Via::ANN;
                if i < 3 {
                    ann_subjects.push(norm_key(&st.cells[&id].cell.content.subject));
                }
            }
        }
        // 2. κ_coarse routing: subjects named by the query, then subjects the ANN found.
        let mut named: Vec<String> = Vec::new();
        let mut seen_subjects = HashSet::new();
        for t in &q_tokens {
            let Some(subs) = st.subject_tokens.get(t) else {
                continue;
            };
            if subs.len() > 64 {
                continue;
            }
            for s in subs {
                if seen_subjects.contains(s) {
                    continue;
                }
                let entry = &st.subjects[s];
                let hit = intersection_sorted(&entry.tokens, &q_tokens);
                if hit == entry.tokens.len() || (subs.len() <= 8 && 2 * hit >= entry.tokens.len()) {
                    seen_subjects.insert(s.clone());
                    named.push(s.clone());
                }
            }
        }
        let named_set: HashSet<&String> = named.iter().collect();
        let mut routed: Vec<&String> = named.iter().collect();
        for s in &ann_subjects {
            if !routed.contains(&s) {
                routed.push(s);
            }
        }
        routed.truncate(16);
        for s in routed {
            let entry = &st.subjects[s];
            let mut window: Vec<(f32, CellId)> = entry
                .facets
                .iter()
                .filter_map(|f| st.kappa.get(&(s.clone(), f.clone())).and_then(|v| v.last()))
                .map(|id| {
                    let sim = match (q, st.ann.as_ref().and_then(|a| a.vector(*id))) {
                        (Some(q), Some(v)) if named_set.contains(s) => {
                            dot(q, v) + st.fine_similarity(q, *id, v)
                        }
                        (Some(q), Some(v)) => dot(q, v),
                        _ => jaccard_sorted(&q_tokens, &st.cells[id].tokens),
                    };
                    (sim, *id)
                })
                .collect();
            window.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (_, id) in window.into_iter().take(policy.window) {
                *via.entry(id).or_default() |= Via::WINDOW;
            }
        }
        // 3. Exact lexical anchor: rare query tokens (names, numbers, ids).
        for t in &q_tokens {
            let post = st.lexical.get(t);
            if !post.is_empty() && post.len() <= policy.anchor_max_df {
                for id in post {
                    *via.entry(*id).or_default() |= Via::ANCHOR;
                }
            }
        }
        // Features.
        let ids: Vec<CellId> = via.keys().copied().collect();
        let vecs: Vec<Option<&[f32]>> = ids
            .iter()
            .map(|id| st.ann.as_ref().and_then(|a| a.vector(*id)))
            .collect();
        let entries: Vec<&CellEntry> = ids.iter().map(|id| &st.cells[id]).collect();
        // Highest similarity of each candidate to any other (each pair computed once).
        let mut closest = vec![0f32; ids.len()];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                let sim = match (vecs[i], vecs[j]) {
                    (Some(a), Some(b)) => dot(a, b),
                    _ => jaccard_sorted(&entries[i].tokens, &entries[j].tokens),
                };
                closest[i] = closest[i].max(sim);
                closest[j] = closest[j].max(sim);
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let e = entries[i];
            let similarity = match (q, vecs[i]) {
                (Some(q), Some(v)) => dot(q, v),
                _ => 0.0,
            };
            let novelty = 1.0 - closest[i];
            let age_secs = (now - e.cell.recorded_at) as f64 / 1e6;
            let facet_tokens = key_tokens(&e.cell.content.facet);
            let kappa_match = named_set.contains(&norm_key(&e.cell.content.subject));
            let fine_similarity = match (q, vecs[i]) {
                (Some(q), Some(v)) if kappa_match => st.fine_similarity(q, *id, v),
                _ => 0.0,
            };
            let f = Features {
                similarity,
                lexical: jaccard_sorted(&q_tokens, &e.tokens),
                recency: policy.concert.recency(age_secs),
                novelty: novelty.clamp(0.0, 1.0),
                read_count: st.reads.get(id).copied().unwrap_or(0),
                age_secs,
                fine_similarity,
                kappa_match,
                facet_match: intersection_sorted(&facet_tokens, &q_tokens) > 0,
                via: Via(via[id]),
            };
            if !policy.concert.admits(&f) {
                continue;
            }
            out.push(Candidate {
                score: policy.concert.score(&f),
                cell: st.cell_with_valid_to(*id),
                features: f,
            });
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.cell.id.cmp(&b.cell.id)));
        out
    }

    /// Walk the chain and every record: returns the first problem (a line that does not
    /// decode or whose anchor does not follow, a record that does not authenticate or whose
    /// content hash differs from its line, a record deleted without a forget line, a seal
    /// that does not match the chain or the configured key).
    pub fn verify(&self) -> Result<VerifyReport> {
        let _w = self.writer.lock().unwrap();
        let mut rep = VerifyReport {
            lines: 0,
            head: genesis_anchor(),
            cells: 0,
            conversations: 0,
            seals: 0,
            problem: None,
        };
        let mut lines: Vec<MemoryLine> = Vec::new();
        let mut anchors: Vec<Hash32> = Vec::new();
        // (kind, key) -> (latest content hash, seq) for live-content ops; forgotten keys.
        let mut latest: HashMap<(u8, String), (Hash32, u64)> = HashMap::new();
        let mut forgotten: HashSet<(u8, String)> = HashSet::new();
        for (i, kv) in self.tree.scan_prefix(b"L").enumerate() {
            let (k, v) = kv?;
            let i = i as u64;
            let bad = |reason: String| Problem {
                line: Some(i),
                reason,
            };
            if k.len() != 9 || u64::from_be_bytes(k[1..9].try_into().unwrap()) != i {
                rep.problem = Some(bad("line missing or out of order".into()));
                return Ok(rep);
            }
            let line = match MemoryLine::decode(&v) {
                Ok(l) => l,
                Err(e) => {
                    rep.problem = Some(bad(e.to_string()));
                    return Ok(rep);
                }
            };
            if line.seq != i {
                rep.problem = Some(bad(format!("line records seq {}", line.seq)));
                return Ok(rep);
            }
            if line.compute_anchor(&rep.head) != line.anchor {
                rep.problem = Some(bad(
                    "anchor does not follow from the previous line (line edited)".into(),
                ));
                return Ok(rep);
            }
            rep.head = line.anchor;
            rep.lines += 1;
            anchors.push(line.anchor);
            let key = (line.kind as u8, line.key.clone());
            match line.op {
                Op::Remember | Op::Supersede | Op::Conversation | Op::Redact => {
                    latest.insert(key, (line.content_hash, line.seq));
                }
                Op::Forget => {
                    forgotten.insert(key);
                }
                Op::Import => {}
            }
            lines.push(line);
        }
        let keys = self.vault.read_all()?;
        // Records present must authenticate and match the line that wrote them.
        let mut present: HashSet<(u8, String)> = HashSet::new();
        for kv in self
            .tree
            .scan_prefix(b"C")
            .chain(self.tree.scan_prefix(b"V"))
        {
            let (k, v) = kv?;
            let (kind, name) = if k[0] == b'C' && k.len() == 9 {
                (
                    Kind::Cell,
                    u64::from_be_bytes(k[1..9].try_into().unwrap()).to_string(),
                )
            } else if k[0] == b'V' && k.len() == 33 {
                (Kind::Conversation, to_hex(&k[1..]))
            } else {
                rep.problem = Some(Problem {
                    line: None,
                    reason: "malformed record key".into(),
                });
                return Ok(rep);
            };
            let what = format!(
                "{} {name}",
                if kind == Kind::Cell {
                    "cell"
                } else {
                    "conversation"
                }
            );
            let Some(h) = record_header(&v) else {
                rep.problem = Some(Problem {
                    line: None,
                    reason: format!("{what}: record truncated"),
                });
                return Ok(rep);
            };
            let pin = lines.get(h.seq as usize).map(|l| l.seq);
            let Some(plain) =
                shred::key_from(&keys, h.slot).and_then(|key| open_record(&key, &k, &v))
            else {
                rep.problem = Some(Problem {
                    line: pin,
                    reason: format!(
                        "{what}: stored content does not authenticate (edited record or key)"
                    ),
                });
                return Ok(rep);
            };
            let hash = hash_bytes(&plain);
            let mkey = (kind as u8, name.clone());
            match lines.get(h.seq as usize) {
                Some(l) if l.kind == kind && l.key == name && l.content_hash == hash => {}
                _ => {
                    rep.problem = Some(Problem {
                        line: pin,
                        reason: format!(
                            "{what}: content hash does not match the line that wrote it"
                        ),
                    });
                    return Ok(rep);
                }
            }
            if latest.get(&mkey).map(|x| x.1) != Some(h.seq)
                || (kind == Kind::Cell && forgotten.contains(&mkey))
            {
                rep.problem = Some(Problem {
                    line: pin,
                    reason: format!("{what}: record is not the latest one the log names"),
                });
                return Ok(rep);
            }
            present.insert(mkey);
            if kind == Kind::Cell {
                rep.cells += 1;
            } else {
                rep.conversations += 1;
            }
        }
        for (key, (_, seq)) in &latest {
            if !present.contains(key) && !forgotten.contains(key) {
                rep.problem = Some(Problem {
                    line: Some(*seq),
                    reason: format!("record {} was deleted without a forget line", key.1),
                });
                return Ok(rep);
            }
        }
        for kv in self.tree.scan_prefix(b"S") {
            let (_, v) = kv?;
            let seal: Seal = match postcard::from_bytes(&v) {
                Ok(s) => s,
                Err(e) => {
                    rep.problem = Some(Problem {
                        line: None,
                        reason: format!("stored seal does not decode: {e}"),
                    });
                    return Ok(rep);
                }
            };
            if let Some(p) = self.check_seal(&seal, &anchors) {
                rep.problem = Some(p);
                return Ok(rep);
            }
            rep.seals += 1;
        }
        Ok(rep)
    }

    pub(crate) fn check_seal(&self, seal: &Seal, anchors: &[Hash32]) -> Option<Problem> {
        let expect = if seal.count == 0 {
            Some(genesis_anchor())
        } else {
            anchors.get(seal.count as usize - 1).copied()
        };
        if expect != Some(seal.head) {
            return Some(Problem {
                line: seal.count.checked_sub(1),
                reason: format!(
                    "seal of {} lines does not match the chain's anchor there (history rewritten)",
                    seal.count
                ),
            });
        }
        if let Some(key) = &self.cfg.seal_key {
            let good = seal
                .mac
                .is_some_and(|m| m == Seal::mac_for(key, seal.count, &seal.head, seal.time));
            if !good {
                return Some(Problem {
                    line: seal.count.checked_sub(1),
                    reason: format!("seal of {} lines is not authenticated by the configured seal key (forged seal)", seal.count),
                });
            }
        }
        None
    }

    /// Check an externally kept seal against the current chain (and the seal key, if set).
    pub fn verify_seal(&self, seal: &Seal) -> Result<Option<Problem>> {
        let _w = self.writer.lock().unwrap();
        let mut anchors = Vec::new();
        for kv in self.tree.scan_prefix(b"L") {
            let (_, v) = kv?;
            anchors.push(MemoryLine::decode(&v)?.anchor);
        }
        Ok(self.check_seal(seal, &anchors))
    }

    /// Seal the current head: `{count, head, time}` plus a keyed-BLAKE2b MAC when a seal
    /// key is configured. The seal is also stored (and checked by every `verify`).
    pub fn seal(&self) -> Result<Seal> {
        let w = self.writer.lock().unwrap();
        let time = now_micros();
        let mac = self
            .cfg
            .seal_key
            .as_ref()
            .map(|k| Seal::mac_for(k, w.next_seq, &w.head, time));
        let seal = Seal {
            count: w.next_seq,
            head: w.head,
            time,
            mac,
        };
        self.tree.insert(
            skey(seal.count),
            postcard::to_allocvec(&seal).expect("seal serialises"),
        )?;
        self.db.flush()?;
        Ok(seal)
    }

    /// Every memory line, in order.
    pub fn lines(&self) -> Result<Vec<MemoryLine>> {
        self.tree
            .scan_prefix(b"L")
            .map(|kv| MemoryLine::decode(&kv?.1))
            .collect()
    }

    /// Flush everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.vault.sync()?;
        self.db.flush()?;
        Ok(())
    }

    /// The raw database, for tamper tests and forensic tools only: writing to it bypasses
    /// the chain (which is exactly what `verify` exists to catch).
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }
}

/// A conversation with the forgotten cells' facts and values removed, or `None` when it
/// holds no trace of them.
fn redact(
    c: &ConversationContent,
    ids: &HashSet<CellId>,
    values: &[String],
) -> Option<ConversationContent> {
    let mentions = |t: &str| {
        values
            .iter()
            .any(|v| !v.is_empty() && t.contains(v.as_str()))
    };
    let hit = c
        .facts
        .iter()
        .any(|f| f.cell.is_some_and(|id| ids.contains(&id)) || mentions(&f.text))
        || mentions(&c.transcript)
        || mentions(&c.summary)
        || c.turns.iter().any(|t| mentions(&t.text));
    if !hit {
        return None;
    }
    let scrub = |t: &str| {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .fold(t.to_string(), |acc, v| {
                acc.replace(v.as_str(), "[forgotten]")
            })
    };
    Some(ConversationContent {
        transcript: scrub(&c.transcript),
        summary: scrub(&c.summary),
        facts: c
            .facts
            .iter()
            .filter(|f| !(f.cell.is_some_and(|id| ids.contains(&id)) || mentions(&f.text)))
            .cloned()
            .collect(),
        summary_embedding: Vec::new(),
        redactions: c.redactions + 1,
        turns: c
            .turns
            .iter()
            .map(|t| Turn {
                label: t.label.clone(),
                speaker: t.speaker.clone(),
                text: scrub(&t.text),
                time: t.time,
                embedding: Vec::new(),
            })
            .collect(),
    })
}

impl State {
    fn add_labels(&mut self, labels: Labels) {
        for (k, mut v) in labels.subjects {
            if self.subjects.contains_key(&k) && !v.is_empty() {
                normalize(&mut v);
                self.subject_vecs.insert(k, v);
            }
        }
        for (k, mut v) in labels.facets {
            if !v.is_empty() {
                normalize(&mut v);
                let count = self.kappa.keys().filter(|(_, f)| *f == k).count();
                if count > 0 {
                    self.facet_vecs.insert(k, (v, count));
                }
            }
        }
    }

    /// κ_fine similarity of a cell of a subject the query names (see [`Features`]).
    fn fine_similarity(&self, q: &[f32], id: CellId, c: &[f32]) -> f32 {
        let content = &self.cells[&id].cell.content;
        let (Some(s), Some((f, _))) = (
            self.subject_vecs.get(&norm_key(&content.subject)),
            self.facet_vecs.get(&norm_key(&content.facet)),
        ) else {
            return 0.0;
        };
        if s.len() != q.len() || f.len() != q.len() {
            return 0.0;
        }
        let residual = |v: &[f32]| {
            let mut r: Vec<f32> = v.iter().zip(s).map(|(a, b)| a - b).collect();
            normalize(&mut r);
            r
        };
        let qr = residual(q);
        0.5 * (dot(&qr, &residual(c)) + dot(&qr, f))
    }

    fn cell_with_valid_to(&self, id: CellId) -> Cell {
        let e = &self.cells[&id];
        let mut cell = e.cell.clone();
        cell.content.embedding.clear();
        let k = (
            norm_key(&cell.content.subject),
            norm_key(&cell.content.facet),
        );
        if let Some(v) = self.kappa.get(&k) {
            if let Some(pos) = v.iter().position(|x| *x == id) {
                cell.valid_to = v
                    .get(pos + 1)
                    .map(|n| self.cells[n].cell.content.valid_from);
            }
        }
        cell
    }

    fn ann_insert(&mut self, id: CellId, v: &[f32], cfg: AnnConfig) -> Result<()> {
        let ann = self.ann.get_or_insert_with(|| AnnIndex::new(v.len(), cfg));
        if ann.dim() != v.len() {
            return Err(MemoryError::Embedding(format!(
                "embedding width {} in a store of width {}",
                v.len(),
                ann.dim()
            )));
        }
        ann.insert(id, v);
        Ok(())
    }

    /// Add a version recorded after every version already present for its κ.
    fn insert_version(&mut self, mut e: CellEntry, cfg: AnnConfig) {
        let subject = norm_key(&e.cell.content.subject);
        let facet = norm_key(&e.cell.content.facet);
        let kappa = (subject.clone(), facet.clone());
        let versions = self.kappa.entry(kappa).or_default();
        if let Some(prev) = versions.last().copied() {
            let pe = &self.cells[&prev];
            self.lexical.remove(prev, &pe.tokens);
            if let Some(a) = self.ann.as_mut() {
                a.remove(prev);
            }
        }
        if versions.is_empty() {
            if let Some((_, n)) = self.facet_vecs.get_mut(&facet) {
                *n += 1;
            }
        }
        versions.push(e.cell.id);
        let id = e.cell.id;
        self.lexical.insert(id, &e.tokens);
        let emb = std::mem::take(&mut e.cell.content.embedding);
        if !emb.is_empty() {
            // A width mismatch was rejected at write time; a stored one is skipped.
            let _ = self.ann_insert(id, &emb, cfg);
        }
        let sub = self.subjects.entry(subject.clone()).or_default();
        if sub.tokens.is_empty() {
            sub.tokens = key_tokens(&subject);
            for t in sub.tokens.clone() {
                self.subject_tokens
                    .entry(t)
                    .or_default()
                    .push(subject.clone());
            }
        }
        let sub = self.subjects.get_mut(&subject).unwrap();
        if !sub.facets.contains(&facet) {
            sub.facets.push(facet);
        }
        self.cells.insert(id, e);
    }

    /// Remove one version (forget); removes the κ entirely when no version is left.
    fn remove_version(&mut self, id: CellId) {
        let Some(e) = self.cells.remove(&id) else {
            return;
        };
        self.reads.remove(&id);
        self.lexical.remove(id, &e.tokens);
        if let Some(a) = self.ann.as_mut() {
            a.remove(id);
        }
        let subject = norm_key(&e.cell.content.subject);
        let facet = norm_key(&e.cell.content.facet);
        let kappa = (subject.clone(), facet.clone());
        if let Some(v) = self.kappa.get_mut(&kappa) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.kappa.remove(&kappa);
                if let Some((_, n)) = self.facet_vecs.get_mut(&facet) {
                    *n -= 1;
                    if *n == 0 {
                        self.facet_vecs.remove(&facet);
                    }
                }
                if let Some(sub) = self.subjects.get_mut(&subject) {
                    sub.facets.retain(|f| *f != facet);
                    if sub.facets.is_empty() {
                        let toks = std::mem::take(&mut sub.tokens);
                        self.subjects.remove(&subject);
                        self.subject_vecs.remove(&subject);
                        for t in toks {
                            if let Some(list) = self.subject_tokens.get_mut(&t) {
                                list.retain(|s| *s != subject);
                                if list.is_empty() {
                                    self.subject_tokens.remove(&t);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The κ keys a selector names.
    fn select(&self, sel: &Selector) -> Vec<(String, String)> {
        match sel {
            Selector::Id(id) => self
                .cells
                .get(id)
                .map(|e| {
                    vec![(
                        norm_key(&e.cell.content.subject),
                        norm_key(&e.cell.content.facet),
                    )]
                })
                .unwrap_or_default(),
            Selector::Kappa { subject, facet } => {
                let k = (norm_key(subject), norm_key(facet));
                if self.kappa.contains_key(&k) {
                    vec![k]
                } else {
                    Vec::new()
                }
            }
            Selector::Query(text) => {
                let q: Vec<String> = token_vec(text)
                    .into_iter()
                    .filter(|t| !matches!(t.as_str(), "forget" | "remove" | "erase" | "delete"))
                    .collect();
                if q.is_empty() {
                    return Vec::new();
                }
                let mut best = 0usize;
                let mut hits: Vec<(String, String)> = Vec::new();
                for (k, v) in &self.kappa {
                    let Some(id) = v.last() else { continue };
                    let n = intersection_sorted(&q, &self.cells[id].tokens);
                    if n * 10 < q.len() * 6 || n < best {
                        continue;
                    }
                    if n > best {
                        best = n;
                        hits.clear();
                    }
                    hits.push(k.clone());
                }
                hits.sort();
                hits
            }
        }
    }
}

/// Parse a conversation address given as 64 hex digits.
pub fn parse_addr(s: &str) -> Result<Hash32> {
    from_hex32(s).ok_or_else(|| {
        MemoryError::Invalid(format!("{s:?} is not a 64-hex-digit conversation address"))
    })
}
