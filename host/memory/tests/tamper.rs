//! Tamper evidence: any single flipped byte of any stored line or record is caught by
//! `verify`; deleting a record or a line is caught; a re-sealed forgery is rejected when
//! a seal key is configured (and, to show why the key matters, accepted without one).

use engram_memory::line::{genesis_anchor, MemoryLine};
use engram_memory::{ExtractedFact, Fact, MemoryConfig, MemoryStore, Seal, Source};

fn filled(dir: &std::path::Path, cfg: MemoryConfig) -> MemoryStore {
    let s = MemoryStore::open(dir, cfg).unwrap();
    s.remember(Fact::new("alice", "phone", "555-0102")).unwrap();
    s.remember(Fact::new("alice", "city", "Lyon")).unwrap();
    s.remember(Fact::new("alice", "city", "Paris")).unwrap();
    s.store_conversation(
        "user: I moved to Paris",
        "Alice moved",
        vec![ExtractedFact {
            text: "moved".into(),
            cell: None,
        }],
        &Source::default(),
    )
    .unwrap();
    s.forget(engram_memory::Selector::Kappa {
        subject: "alice".into(),
        facet: "phone".into(),
    })
    .unwrap();
    assert!(s.verify().unwrap().ok());
    s
}

/// Flip each byte of each stored value (one at a time, restoring it after) and require
/// `verify` to report a problem every time.
#[test]
fn every_single_byte_flip_of_every_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path(), MemoryConfig::durable());
    let tree = s.raw_tree();
    let mut checked = 0;
    let entries: Vec<(sled::IVec, sled::IVec)> = tree.iter().map(Result::unwrap).collect();
    for (k, v) in entries {
        if !matches!(k[0], b'L' | b'C' | b'V') {
            continue;
        }
        for i in 0..v.len() {
            let mut bad = v.to_vec();
            bad[i] ^= 0x20;
            tree.insert(&k, bad).unwrap();
            let r = s.verify().unwrap();
            assert!(
                !r.ok(),
                "flip of byte {i} of record {:?} went undetected",
                String::from_utf8_lossy(&k[..1])
            );
            checked += 1;
        }
        tree.insert(&k, v).unwrap();
        assert!(s.verify().unwrap().ok());
    }
    assert!(checked > 500, "only {checked} flips tried");
}

#[test]
fn the_first_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path(), MemoryConfig::durable());
    let tree = s.raw_tree();
    let key = [b'L', 0, 0, 0, 0, 0, 0, 0, 2];
    let mut v = tree.get(key).unwrap().unwrap().to_vec();
    let n = v.len();
    v[n - 40] ^= 1; // inside the content hash
    tree.insert(key, v).unwrap();
    let r = s.verify().unwrap();
    assert_eq!(r.problem.unwrap().line, Some(2));
    assert_eq!(r.lines, 2, "the two good lines before it were walked");
}

#[test]
fn deleted_records_and_keys_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path(), MemoryConfig::durable());
    let tree = s.raw_tree();
    // Remove the current "city" cell without a forget line.
    let (k, v) = tree.scan_prefix(b"C").next_back().unwrap().unwrap();
    tree.remove(&k).unwrap();
    let p = s.verify().unwrap().problem.unwrap();
    assert!(p.reason.contains("deleted without a forget line"), "{p}");
    tree.insert(&k, v).unwrap();
    // Remove the last line.
    let (lk, _) = tree.scan_prefix(b"L").next().unwrap().unwrap();
    tree.remove(&lk).unwrap();
    assert!(!s.verify().unwrap().ok());
    drop(s);
    // A flipped byte in the keys file is caught too.
    let keys = dir.path().join("keys.bin");
    let mut kb = std::fs::read(&keys).unwrap();
    let at = kb.iter().position(|b| *b != 0).unwrap();
    kb[at] ^= 1;
    std::fs::write(&keys, kb).unwrap();
    assert!(
        MemoryStore::open(dir.path(), MemoryConfig::durable()).is_err(),
        "a record that no longer decrypts refuses to load"
    );
}

/// Rewrite line 1 (an attacker with write access to the files) and recompute every
/// later anchor so the chain itself verifies.
fn rewrite_history(s: &MemoryStore) {
    let tree = s.raw_tree();
    let mut lines = s.lines().unwrap();
    lines[1].ctx = "session=forged".into();
    let mut prev = genesis_anchor();
    for l in lines.iter_mut() {
        *l = MemoryLine::new(
            l.seq,
            l.op,
            l.kind,
            l.key.clone(),
            l.content_hash,
            l.ctx.clone(),
            l.timestamp,
            &prev,
        );
        prev = l.anchor;
        let mut k = vec![b'L'];
        k.extend_from_slice(&l.seq.to_be_bytes());
        tree.insert(k, l.encode()).unwrap();
    }
}

fn forge_seal(s: &MemoryStore, key: Option<&[u8]>) {
    let lines = s.lines().unwrap();
    let head = lines.last().unwrap().anchor;
    let count = lines.len() as u64;
    let time: i64 = 1;
    let mac = key.map(|k| {
        engram_memory::hash::keyed_hash_parts(
            k,
            &[
                b"engram-seal",
                &count.to_le_bytes(),
                &head,
                &time.to_le_bytes(),
            ],
        )
    });
    let seal = Seal {
        count,
        head,
        time,
        mac,
    };
    let tree = s.raw_tree();
    for kv in tree.scan_prefix(b"S") {
        tree.remove(kv.unwrap().0).unwrap();
    }
    let mut k = vec![b'S'];
    k.extend_from_slice(&count.to_be_bytes());
    tree.insert(k, postcard::to_allocvec(&seal).unwrap())
        .unwrap();
}

#[test]
fn resealed_forgery_is_rejected_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(
        dir.path(),
        MemoryConfig::durable().with_seal_key(b"operator secret".to_vec()),
    );
    let genuine = s.seal().unwrap();
    assert!(genuine.mac.is_some());
    assert!(s.verify().unwrap().ok());
    rewrite_history(&s);
    // The chain alone now verifies, but the genuine seal no longer matches it.
    let p = s
        .verify()
        .unwrap()
        .problem
        .expect("rewritten history against the genuine seal");
    assert!(p.reason.contains("history rewritten"), "{p}");
    assert!(s.verify_seal(&genuine).unwrap().is_some());
    // The forger reseals without the key, or with a guessed key: rejected.
    forge_seal(&s, None);
    let p = s.verify().unwrap().problem.expect("unkeyed reseal");
    assert!(p.reason.contains("forged seal"), "{p}");
    forge_seal(&s, Some(b"guess"));
    assert!(s
        .verify()
        .unwrap()
        .problem
        .unwrap()
        .reason
        .contains("forged seal"));
}

#[test]
fn without_a_key_a_reseal_cannot_be_told_apart() {
    // Documents the threat model: an unkeyed seal only proves accident-freedom.
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path(), MemoryConfig::durable());
    s.seal().unwrap();
    rewrite_history(&s);
    forge_seal(&s, None);
    assert!(s.verify().unwrap().ok());
}
