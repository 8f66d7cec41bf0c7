//! Conversation sessions: naming, the in-memory LRU of live sessions, and their snapshots on
//! disk (`<data>/sessions/<name>.kv`), written atomically (temp file + rename) so a crash
//! never leaves a torn snapshot.
//!
//! A session is named by the client (`session` field or `x-engram-session` header) or derived
//! from the conversation: after a turn the session is filed under the hash of the whole
//! conversation including the answer, and the next request finds it under the hash of its
//! messages minus the last one — so stateless OpenAI clients that resend the history still
//! reuse the KV cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blake2::{Blake2b512, Digest};

use crate::error::ApiError;
use crate::openai::Message;

/// Longest accepted session name.
pub const MAX_SESSION_NAME: usize = 128;

/// Refuse session names that could escape the sessions folder or are unreasonable.
pub fn check_session_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SESSION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            Some("session".into()),
            format!(
                "session names are 1 to {MAX_SESSION_NAME} characters of A-Z a-z 0-9 - _ . \
                 (not starting with a dot)"
            ),
        ))
    }
}

/// Hex of the first 12 bytes of BLAKE2b-512 of `bytes`.
pub fn short_hash(bytes: &[u8]) -> String {
    Blake2b512::digest(bytes)[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The derived name of a conversation: a hash over roles and contents.
pub fn derived_name(messages: &[Message]) -> String {
    let mut hasher = Blake2b512::new();
    for message in messages {
        hasher.update(message.role.template_name().as_bytes());
        hasher.update([0]);
        hasher.update(message.content.as_deref().unwrap_or("").as_bytes());
        hasher.update([0xff]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("auto-{hex}")
}

/// Live sessions held in memory, least recently used evicted first.
pub struct SessionCache<S> {
    live: HashMap<String, (u64, S)>,
    clock: u64,
    capacity: usize,
    dir: PathBuf,
}

impl<S> SessionCache<S> {
    /// A cache holding at most `capacity` sessions in memory, snapshots under `dir`.
    pub fn new(dir: PathBuf, capacity: usize) -> std::io::Result<SessionCache<S>> {
        std::fs::create_dir_all(&dir)?;
        Ok(SessionCache {
            live: HashMap::new(),
            clock: 0,
            capacity: capacity.max(1),
            dir,
        })
    }

    /// Number of sessions in memory.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no session is in memory.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Take a session out of memory (the caller puts it back with [`SessionCache::insert`]).
    pub fn take(&mut self, name: &str) -> Option<S> {
        self.live.remove(name).map(|(_, session)| session)
    }

    /// Put a session in memory; returns the sessions evicted to stay within capacity, which
    /// the caller must snapshot to disk.
    pub fn insert(&mut self, name: String, session: S) -> Vec<(String, S)> {
        self.clock += 1;
        self.live.insert(name, (self.clock, session));
        let mut evicted = Vec::new();
        while self.live.len() > self.capacity {
            let oldest = self
                .live
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(name, _)| name.clone());
            match oldest.and_then(|name| self.live.remove(&name).map(|(_, s)| (name, s))) {
                Some(entry) => evicted.push(entry),
                None => break,
            }
        }
        evicted
    }

    /// Every session in memory (for persisting all at shutdown).
    pub fn drain(&mut self) -> Vec<(String, S)> {
        self.live.drain().map(|(name, (_, s))| (name, s)).collect()
    }

    /// Path of a session's snapshot.
    pub fn snapshot_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.kv"))
    }

    /// Read a snapshot from disk, if one exists.
    pub fn read_snapshot(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.snapshot_path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Write a snapshot atomically.
    pub fn write_snapshot(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.snapshot_path(name), bytes)
    }

    /// Delete a session's snapshot (a derived session that moved to its next name); a
    /// missing snapshot is not an error.
    pub fn remove_snapshot(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.snapshot_path(name)) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Write `bytes` to `path` through a temporary file, fsync, then rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Role;

    fn msg(role: Role, text: &str) -> Message {
        Message::new(role, text)
    }

    #[test]
    fn session_names_cannot_escape_the_folder() {
        assert!(check_session_name("abc-DEF_1.2").is_ok());
        for bad in ["", "../etc", "a/b", ".hidden", "x y", &"a".repeat(200)] {
            assert!(check_session_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn derived_names_follow_the_conversation() {
        let turn1 = vec![msg(Role::User, "hi")];
        let mut after = turn1.clone();
        after.push(msg(Role::Assistant, "hello"));
        let mut turn2 = after.clone();
        turn2.push(msg(Role::User, "how are you"));
        assert_eq!(
            derived_name(&after),
            derived_name(&turn2[..turn2.len() - 1])
        );
        assert_ne!(derived_name(&turn1), derived_name(&after));
        // Role boundaries matter: moving text between messages changes the name.
        let split = vec![msg(Role::User, "h"), msg(Role::User, "i")];
        assert_ne!(derived_name(&turn1), derived_name(&split));
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let dir = std::env::temp_dir().join(format!("engram-lru-{}", std::process::id()));
        let mut cache = SessionCache::new(dir.clone(), 2).unwrap();
        assert!(cache.insert("a".into(), 1).is_empty());
        assert!(cache.insert("b".into(), 2).is_empty());
        let a = cache.take("a").unwrap();
        assert!(cache.insert("a".into(), a).is_empty());
        let evicted = cache.insert("c".into(), 3);
        assert_eq!(evicted, vec![("b".to_string(), 2)]);
        cache.write_snapshot("x", b"data").unwrap();
        assert_eq!(
            cache.read_snapshot("x").unwrap().as_deref(),
            Some(&b"data"[..])
        );
        assert_eq!(cache.read_snapshot("missing").unwrap(), None);
        cache.remove_snapshot("x").unwrap();
        cache.remove_snapshot("x").unwrap();
        assert_eq!(cache.read_snapshot("x").unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
