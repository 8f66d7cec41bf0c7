//! Memory lines and the BLAKE2b anchor chain that links them.
//!
//! Every write appends one line `{seq, op, kind, key, content-hash, ctx, timestamp, anchor}`.
//! The anchor is `anchor_n = BLAKE2b(anchor_{n-1} ‖ op ‖ content-hash ‖ ctx)` where, so that
//! *every* byte of a stored line is covered, "ctx" is the canonical encoding of the line's
//! remaining fields (seq, kind, key, context text, timestamp). The genesis anchor is
//! `BLAKE2b("engram-memory-genesis")`.

use crate::error::{MemoryError, Result};
use crate::hash::{hash_bytes, hash_parts, Hash32};

/// Declares a one-byte code enum once: its variants with their codes and names, the
/// decoding of a stored byte (`from_u8`) and the lower-case name used in listings.
macro_rules! code_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $code:literal => $label:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            fn from_u8(b: u8) -> Option<Self> {
                [$(Self::$variant),+].into_iter().find(|v| *v as u8 == b)
            }

            /// The lower-case name used in listings.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }
    };
}

code_enum! {
    /// What a memory line records.
    pub enum Op {
        /// A new cell (first value for its κ).
        Remember = 1 => "remember",
        /// A new value for an existing κ; the previous version becomes history.
        Supersede = 2 => "supersede",
        /// Content of a cell or conversation was erased; the line keeps its content hash.
        Forget = 3 => "forget",
        /// A conversation stored in the long tier.
        Conversation = 4 => "conversation",
        /// A conversation rewritten because facts extracted from it were forgotten.
        Redact = 5 => "redact",
        /// An `.atom` file was imported (the content hash is the file's checksum).
        Import = 6 => "import",
    }
}

code_enum! {
    /// What kind of record a line's key names.
    pub enum Kind {
        /// A cell (fact version); the key is its id.
        Cell = 1 => "cell",
        /// A conversation; the key is its BLAKE2b-256 address.
        Conversation = 2 => "conversation",
        /// The store as a whole (imports, seals).
        Store = 3 => "store",
    }
}

/// One entry of the append-only log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLine {
    /// Position in the log, from 0.
    pub seq: u64,
    /// What happened.
    pub op: Op,
    /// What kind of record `key` names.
    pub kind: Kind,
    /// The record: a cell id (decimal) or a conversation address (hex); never content.
    pub key: String,
    /// BLAKE2b-256 of the record's content (kept after the content is forgotten).
    pub content_hash: Hash32,
    /// Provenance such as `session=s1 turn=4`; never the remembered value.
    pub ctx: String,
    /// When the line was written, microseconds since the Unix epoch.
    pub timestamp: i64,
    /// The chain anchor after this line.
    pub anchor: Hash32,
}

/// The anchor before the first line.
pub fn genesis_anchor() -> Hash32 {
    hash_bytes(b"engram-memory-genesis")
}

impl MemoryLine {
    /// Canonical encoding of the fields the spec calls "ctx" (everything but op, hash, anchor).
    fn ctx_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24 + self.key.len() + self.ctx.len());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.push(self.kind as u8);
        put_str(&mut v, &self.key, 4);
        put_str(&mut v, &self.ctx, 4);
        v.extend_from_slice(&self.timestamp.to_le_bytes());
        v
    }

    /// `BLAKE2b(prev ‖ op ‖ content-hash ‖ ctx)` for this line.
    pub fn compute_anchor(&self, prev: &Hash32) -> Hash32 {
        hash_parts(&[
            prev,
            &[self.op as u8],
            &self.content_hash,
            &self.ctx_bytes(),
        ])
    }

    /// Build a line and compute its anchor from the previous one.
    #[allow(clippy::too_many_arguments)] // one argument per field of the line
    pub fn new(
        seq: u64,
        op: Op,
        kind: Kind,
        key: String,
        content_hash: Hash32,
        ctx: String,
        timestamp: i64,
        prev: &Hash32,
    ) -> Self {
        let mut line = Self {
            seq,
            op,
            kind,
            key,
            content_hash,
            ctx,
            timestamp,
            anchor: [0; 32],
        };
        line.anchor = line.compute_anchor(prev);
        line
    }

    /// Binary encoding stored in sled: fixed fields, length-prefixed strings, anchor last.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(96 + self.key.len() + self.ctx.len());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.push(self.op as u8);
        v.push(self.kind as u8);
        v.extend_from_slice(&self.timestamp.to_le_bytes());
        put_str(&mut v, &self.key, 2);
        v.extend_from_slice(&self.content_hash);
        put_str(&mut v, &self.ctx, 2);
        v.extend_from_slice(&self.anchor);
        v
    }

    /// Decode a stored line; any malformed byte gives [`MemoryError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { b: bytes, at: 0 };
        let seq = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
        let op = Op::from_u8(r.take(1)?[0]).ok_or_else(|| corrupt("unknown op"))?;
        let kind = Kind::from_u8(r.take(1)?[0]).ok_or_else(|| corrupt("unknown kind"))?;
        let timestamp = i64::from_le_bytes(r.take(8)?.try_into().unwrap());
        let key = r.string("key")?;
        let content_hash: Hash32 = r.take(32)?.try_into().unwrap();
        let ctx = r.string("ctx")?;
        let anchor: Hash32 = r.take(32)?.try_into().unwrap();
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Self {
            seq,
            op,
            kind,
            key,
            content_hash,
            ctx,
            timestamp,
            anchor,
        })
    }
}

/// Append `s` with its length as a little-endian integer of `width` bytes (2 or 4).
fn put_str(v: &mut Vec<u8>, s: &str, width: usize) {
    v.extend_from_slice(&(s.len() as u32).to_le_bytes()[..width]);
    v.extend_from_slice(s.as_bytes());
}

fn corrupt(what: &str) -> MemoryError {
    MemoryError::Corrupt(format!("memory line does not decode: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A string written by `put_str(.., 2)`; `what` names the field in the error.
    fn string(&mut self, what: &str) -> Result<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| corrupt(&format!("{what} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MemoryLine {
        MemoryLine::new(
            3,
            Op::Remember,
            Kind::Cell,
            "17".into(),
            [7; 32],
            "session=a".into(),
            42,
            &genesis_anchor(),
        )
    }

    #[test]
    fn encode_decode_round_trip() {
        let l = sample();
        assert_eq!(MemoryLine::decode(&l.encode()).unwrap(), l);
    }

    #[test]
    fn every_byte_flip_is_caught_by_decode_or_anchor() {
        let l = sample();
        let enc = l.encode();
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x01;
            match MemoryLine::decode(&bad) {
                Err(_) => {}
                Ok(d) => assert_ne!(
                    d.compute_anchor(&genesis_anchor()),
                    d.anchor,
                    "flip at byte {i} undetected"
                ),
            }
        }
    }
}
