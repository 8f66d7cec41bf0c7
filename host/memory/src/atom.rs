//! `.atom` files: a whole memory (cells with history, conversations, recall policy, the
//! log and its seal) in one verifiable file.
//!
//! Layout (version 1):
//!
//! ```text
//! "ENGRAM-ATOM\0" (12 bytes) ‖ version u32 LE ‖ body length u64 LE ‖ body ‖ BLAKE2b-256 checksum
//! ```
//!
//! The body is a postcard-encoded [`AtomBody`]; the checksum covers every byte before it.
//! Import refuses a file whose size, magic, version or checksum is wrong, and then
//! re-verifies the content itself (the chain, every record against its line, the seal),
//! so a file edited *and* re-checksummed is refused too. The file holds the memory in
//! clear: it is an explicit export, protect it like the data it holds.

use crate::error::{MemoryError, Result};
use crate::hash::{hash_bytes, to_hex, Hash32};
use crate::line::{genesis_anchor, Kind, MemoryLine, Op};
use crate::recall::RecallPolicy;
use crate::shred::KeyVault;
use crate::store::{encode_record, lkey, now_micros, MemoryStore, Seal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// First bytes of every `.atom` file.
pub const MAGIC: &[u8; 12] = b"ENGRAM-ATOM\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 12 + 4 + 8;

/// One stored record in clear: its database key, the line that wrote it, when, and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomRecord {
    /// `C` ‖ cell id, or `V` ‖ conversation address.
    pub key: Vec<u8>,
    /// Sequence number of the line that wrote the content.
    pub seq: u64,
    /// Recording time (µs).
    pub time: i64,
    /// Canonical content bytes (hashed by the line).
    pub content: Vec<u8>,
}

/// Everything an `.atom` file carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtomBody {
    /// Every memory line, encoded.
    pub lines: Vec<Vec<u8>>,
    /// Live records (cell versions and conversations).
    pub records: Vec<AtomRecord>,
    /// The recall policy.
    pub policy: RecallPolicy,
    /// A seal of all `lines`.
    pub seal: Seal,
}

/// What an import brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines imported (before the import line).
    pub lines: u64,
    /// Records imported.
    pub records: u64,
    /// Checksum of the file (the content hash of the import line).
    pub checksum: Hash32,
}

fn refuse(path: &Path, reason: impl Into<String>) -> MemoryError {
    MemoryError::AtomRefused {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Serialise `body` into the file format.
pub fn encode_file(body: &AtomBody) -> Vec<u8> {
    let b = postcard::to_allocvec(body).expect("atom body serialises");
    let mut out = Vec::with_capacity(HEADER + b.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(&b);
    let sum = hash_bytes(&out);
    out.extend_from_slice(&sum);
    out
}

/// Parse the file format, checking size, magic, version and checksum.
pub fn decode_file(path: &Path, bytes: &[u8]) -> Result<(AtomBody, Hash32)> {
    if bytes.len() < HEADER + 32 {
        return Err(refuse(
            path,
            format!(
                "truncated: {} bytes, shorter than the {}-byte header and checksum",
                bytes.len(),
                HEADER + 32
            ),
        ));
    }
    if &bytes[..12] != MAGIC {
        return Err(refuse(path, "not an .atom file (bad magic bytes)"));
    }
    let version = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    if version != VERSION {
        return Err(refuse(
            path,
            format!("format version {version}; this build reads version {VERSION}"),
        ));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    let expected = (HEADER as u64).saturating_add(len).saturating_add(32);
    if (bytes.len() as u64) < expected {
        return Err(refuse(
            path,
            format!(
                "truncated: header announces {expected} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    if (bytes.len() as u64) > expected {
        return Err(refuse(
            path,
            format!(
                "{} unexpected bytes after the checksum",
                bytes.len() as u64 - expected
            ),
        ));
    }
    let body_end = HEADER + len as usize;
    let sum: Hash32 = bytes[body_end..].try_into().unwrap();
    if hash_bytes(&bytes[..body_end]) != sum {
        return Err(refuse(
            path,
            "checksum mismatch: the file was edited or corrupted",
        ));
    }
    let body: AtomBody = postcard::from_bytes(&bytes[HEADER..body_end])
        .map_err(|e| refuse(path, format!("body does not decode: {e}")))?;
    Ok((body, sum))
}

/// Check the body's own evidence: the chain, the seal, and every record against its line.
/// Returns the decoded lines.
pub fn validate(path: &Path, body: &AtomBody, seal_key: Option<&[u8]>) -> Result<Vec<MemoryLine>> {
    let mut prev = genesis_anchor();
    let mut lines = Vec::with_capacity(body.lines.len());
    let mut latest: HashMap<(u8, String), u64> = HashMap::new();
    let mut forgotten = std::collections::HashSet::new();
    for (i, raw) in body.lines.iter().enumerate() {
        let line = MemoryLine::decode(raw).map_err(|e| refuse(path, format!("line {i}: {e}")))?;
        if line.seq != i as u64 {
            return Err(refuse(path, format!("line {i}: records seq {}", line.seq)));
        }
        if line.compute_anchor(&prev) != line.anchor {
            return Err(refuse(
                path,
                format!(
                    "line {i}: anchor does not follow from line {} (edited history)",
                    i as i64 - 1
                ),
            ));
        }
        prev = line.anchor;
        let key = (line.kind as u8, line.key.clone());
        match line.op {
            Op::Forget => {
                forgotten.insert(key);
            }
            Op::Import => {}
            _ => {
                latest.insert(key, line.seq);
            }
        }
        lines.push(line);
    }
    let seal = &body.seal;
    if seal.count != lines.len() as u64 || seal.head != prev {
        return Err(refuse(
            path,
            format!(
                "seal covers {} lines ending in a different head than the {} lines in the file",
                seal.count,
                lines.len()
            ),
        ));
    }
    if let (Some(key), Some(mac)) = (seal_key, seal.mac) {
        if mac != Seal::mac_for(key, seal.count, &seal.head, seal.time) {
            return Err(refuse(path, "seal is not authenticated by this store's seal key (forged, or sealed with another key)"));
        }
    }
    for r in &body.records {
        let (kind, name) = match (r.key.first(), r.key.len()) {
            (Some(b'C'), 9) => (
                Kind::Cell,
                u64::from_be_bytes(r.key[1..9].try_into().unwrap()).to_string(),
            ),
            (Some(b'V'), 33) => (Kind::Conversation, to_hex(&r.key[1..])),
            _ => return Err(refuse(path, "record with a malformed key")),
        };
        let line = lines
            .get(r.seq as usize)
            .ok_or_else(|| refuse(path, format!("record {name} names missing line {}", r.seq)))?;
        if line.kind != kind || line.key != name || line.content_hash != hash_bytes(&r.content) {
            return Err(refuse(
                path,
                format!(
                    "record {name}: content does not match its memory line {}",
                    r.seq
                ),
            ));
        }
        let k = (kind as u8, name.clone());
        if latest.get(&k) != Some(&r.seq) || (kind == Kind::Cell && forgotten.contains(&k)) {
            return Err(refuse(
                path,
                format!("record {name}: not the latest content the log names"),
            ));
        }
    }
    Ok(lines)
}

impl MemoryStore {
    /// Export the whole memory to `path` as one `.atom` file (written atomically: a temp
    /// file renamed into place). Returns the seal written into it.
    pub fn export_atom(&self, path: impl AsRef<Path>) -> Result<Seal> {
        let path = path.as_ref();
        let w = self.writer.lock().unwrap();
        let keys = self.vault.read_all()?;
        let mut lines = Vec::new();
        for kv in self.tree.scan_prefix(b"L") {
            lines.push(kv?.1.to_vec());
        }
        let mut records = Vec::new();
        for kv in self
            .tree
            .scan_prefix(b"C")
            .chain(self.tree.scan_prefix(b"V"))
        {
            let (k, v) = kv?;
            let h = crate::store::record_header(&v)
                .ok_or_else(|| MemoryError::Corrupt("record too short".into()))?;
            let content = crate::shred::key_from(&keys, h.slot)
                .and_then(|key| crate::store::open_record(&key, &k, &v))
                .ok_or_else(|| {
                    MemoryError::Corrupt(format!(
                        "record at seq {} does not authenticate; run verify",
                        h.seq
                    ))
                })?;
            records.push(AtomRecord {
                key: k.to_vec(),
                seq: h.seq,
                time: h.time,
                content,
            });
        }
        let time = now_micros();
        let seal = Seal {
            count: w.next_seq,
            head: w.head,
            time,
            mac: self
                .cfg
                .seal_key
                .as_ref()
                .map(|k| Seal::mac_for(k, w.next_seq, &w.head, time)),
        };
        let body = AtomBody {
            lines,
            records,
            policy: self.policy(),
            seal: seal.clone(),
        };
        let bytes = encode_file(&body);
        let tmp = path.with_extension("atom.partial");
        std::fs::write(&tmp, &bytes).map_err(|e| MemoryError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| MemoryError::io(path, e))?;
        Ok(seal)
    }

    /// Import an `.atom` file into this store, which must be empty. Nothing is written
    /// unless the whole file verifies; the import itself is recorded as one more line.
    pub fn import_atom(&self, path: impl AsRef<Path>) -> Result<ImportReport> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| MemoryError::io(path, e))?;
        let (body, checksum) = decode_file(path, &bytes)?;
        let lines = validate(path, &body, self.cfg.seal_key.as_deref())?;
        let mut w = self.writer.lock().unwrap();
        if w.next_seq != 0 {
            return Err(refuse(
                path,
                format!(
                    "this store already holds {} memory lines; import into an empty store",
                    w.next_seq
                ),
            ));
        }
        let mut batch = sled::Batch::default();
        for (i, raw) in body.lines.iter().enumerate() {
            batch.insert(&lkey(i as u64), raw.clone());
        }
        let mut slot = 0u64;
        let mut next_id = 0u64;
        for r in &body.records {
            let key = KeyVault::fresh_key()?;
            self.vault.put(slot, &key)?;
            batch.insert(
                r.key.clone(),
                encode_record(&key, &r.key, slot, r.seq, r.time, &r.content),
            );
            if r.key[0] == b'C' {
                next_id = next_id.max(u64::from_be_bytes(r.key[1..9].try_into().unwrap()) + 1);
            }
            slot += 1;
        }
        // Ids of forgotten cells are never reused either.
        for l in &lines {
            if l.kind == Kind::Cell {
                if let Ok(id) = l.key.parse::<u64>() {
                    next_id = next_id.max(id + 1);
                }
            }
        }
        let seq = lines.len() as u64;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let head = lines.last().map_or_else(genesis_anchor, |l| l.anchor);
        let line = MemoryLine::new(
            seq,
            Op::Import,
            Kind::Store,
            String::new(),
            checksum,
            format!("file={name}"),
            now_micros(),
            &head,
        );
        batch.insert(&lkey(seq), line.encode());
        let mut counters = next_id.to_le_bytes().to_vec();
        counters.extend_from_slice(&slot.to_le_bytes());
        batch.insert(b"N", counters);
        batch.insert(
            b"P",
            postcard::to_allocvec(&body.policy).expect("policy serialises"),
        );
        self.vault.sync()?;
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        *self.policy.write().unwrap() = body.policy;
        let (max_id, max_slot) = self.load()?;
        w.next_seq = seq + 1;
        w.head = line.anchor;
        w.next_id = next_id.max(max_id);
        w.next_slot = slot.max(max_slot);
        drop(w);
        Ok(ImportReport {
            lines: seq,
            records: body.records.len() as u64,
            checksum,
        })
    }
}
