//! Crypto-shredding: every stored record is encrypted under its own random key, and the
//! keys live in one small file outside the database, one fixed 32-byte slot per key.
//!
//! Why: sled is log-structured, so a deleted value survives in old segments until the
//! segment is reclaimed, and sled 0.34 offers no way to force that. Forgetting therefore
//! destroys the record's key by overwriting its slot in place with zeros (and `fsync`ing),
//! which leaves every copy of the ciphertext anywhere in the database undecryptable.
//! Limit (documented, not hidden): the overwrite is in place at the file level; a
//! copy-on-write filesystem (btrfs, ZFS) or an SSD's wear levelling may keep the old block
//! physically until it is reused. The keys file is never copied by the store itself.

use crate::error::{MemoryError, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Size of one key slot in the keys file.
pub const SLOT_BYTES: u64 = 32;

/// The keys file: slot `i` holds the key of the record that references slot `i`.
#[derive(Debug)]
pub struct KeyVault {
    file: File,
    path: PathBuf,
}

impl KeyVault {
    /// Open (creating if needed) the keys file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| MemoryError::io(path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// A fresh random key.
    pub fn fresh_key() -> Result<[u8; 32]> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| MemoryError::Random(e.to_string()))?;
        Ok(k)
    }

    /// Write `key` into `slot` (not yet durable: call [`KeyVault::sync`]).
    pub fn put(&self, slot: u64, key: &[u8; 32]) -> Result<()> {
        let at = slot
            .checked_mul(SLOT_BYTES)
            .ok_or_else(|| MemoryError::Invalid(format!("key slot {slot} out of range")))?;
        self.file
            .write_all_at(key, at)
            .map_err(|e| MemoryError::io(&self.path, e))
    }

    /// Overwrite `slot` with zeros, destroying its key (not yet durable: call `sync`).
    pub fn destroy(&self, slot: u64) -> Result<()> {
        self.put(slot, &[0u8; 32])
    }

    /// Read the key in `slot`; `None` when the slot was destroyed or never written.
    pub fn get(&self, slot: u64) -> Result<Option<[u8; 32]>> {
        let mut k = [0u8; 32];
        let Some(at) = slot.checked_mul(SLOT_BYTES) else {
            return Ok(None);
        };
        match self.file.read_exact_at(&mut k, at) {
            Ok(()) => Ok((k != [0u8; 32]).then_some(k)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(MemoryError::io(&self.path, e)),
        }
    }

    /// Read the whole file (used when the store opens and loads every record).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.path).map_err(|e| MemoryError::io(&self.path, e))
    }

    /// Make all slot writes durable.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| MemoryError::io(&self.path, e))
    }
}

/// Key of `slot` taken from a full copy of the keys file (see [`KeyVault::read_all`]).
pub fn key_from(all: &[u8], slot: u64) -> Option<[u8; 32]> {
    let at = usize::try_from(slot.checked_mul(SLOT_BYTES)?).ok()?;
    let k: [u8; 32] = all.get(at..at.checked_add(32)?)?.try_into().ok()?;
    (k != [0u8; 32]).then_some(k)
}

/// Encrypt `plain` under `key`; `aad` (the record's sled key) is authenticated too, so a
/// record moved to another key does not decrypt. Each key encrypts exactly one record, so
/// the all-zero nonce is never reused under a key.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let c = ChaCha20Poly1305::new(Key::from_slice(key));
    c.encrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: plain, aad })
        .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail")
}

/// Decrypt and authenticate a record sealed by [`seal`]; `None` when it was altered.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let c = ChaCha20Poly1305::new(Key::from_slice(key));
    c.decrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: sealed, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroyed_key_is_gone_and_ciphertext_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let v = KeyVault::open(&dir.path().join("keys")).unwrap();
        let k = KeyVault::fresh_key().unwrap();
        v.put(5, &k).unwrap();
        let ct = seal(&k, b"c1", b"secret value");
        assert_eq!(
            open(&v.get(5).unwrap().unwrap(), b"c1", &ct).unwrap(),
            b"secret value"
        );
        assert!(open(&k, b"c2", &ct).is_none(), "aad binds the record key");
        v.destroy(5).unwrap();
        assert_eq!(v.get(5).unwrap(), None);
        assert_eq!(v.get(99).unwrap(), None);
        let all = v.read_all().unwrap();
        assert!(all.windows(32).all(|w| w != k));
    }
}
