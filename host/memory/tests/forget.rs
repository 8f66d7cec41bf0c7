//! Verifiable forgetting: after `forget`, no byte sequence of the forgotten value (nor
//! the key that could decrypt its old ciphertext) is anywhere in the store's files,
//! recall never returns it, `verify` passes and `prove_forgotten` holds.

use engram_memory::{ExtractedFact, Fact, MemoryConfig, MemoryStore, Selector, Source};
use std::path::Path;

const SECRET: &str = "Zq7-SECRET-4471-kumquat";
const OLD_SECRET: &str = "Zq7-OLDSECRET-1234-plum";

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn occurs(dir: &Path, needle: &[u8]) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// The key slots of every stored record of κ (read from the raw records) and their keys.
fn keys_of(dir: &Path, s: &MemoryStore) -> Vec<[u8; 32]> {
    let all = std::fs::read(dir.join("keys.bin")).unwrap();
    s.raw_tree()
        .scan_prefix(b"C")
        .chain(s.raw_tree().scan_prefix(b"V"))
        .map(|kv| {
            let v = kv.unwrap().1;
            let slot = u64::from_le_bytes(v[..8].try_into().unwrap()) as usize;
            all[slot * 32..slot * 32 + 32].try_into().unwrap()
        })
        .collect()
}

fn setup(dir: &Path) -> MemoryStore {
    let s = MemoryStore::open(dir, MemoryConfig::durable()).unwrap();
    for i in 0..200 {
        s.remember(Fact::new(
            format!("user{i}"),
            "token",
            format!("tok-{i:05}"),
        ))
        .unwrap();
    }
    s.remember(Fact::new("vault", "passphrase", OLD_SECRET))
        .unwrap();
    let id = s
        .remember(
            Fact::new("vault", "passphrase", SECRET)
                .with_text(format!("The vault passphrase is {SECRET}")),
        )
        .unwrap()
        .id();
    s.store_conversation(
        &format!("user: the vault passphrase is now {SECRET}\nassistant: noted"),
        &format!("User set the vault passphrase to {SECRET}"),
        vec![
            ExtractedFact {
                text: format!("The vault passphrase is {SECRET}"),
                cell: Some(id),
            },
            ExtractedFact {
                text: "The user likes tea".into(),
                cell: None,
            },
        ],
        &Source::default(),
    )
    .unwrap();
    s
}

fn check_forgotten(dir: &Path, sel: impl FnOnce(&MemoryStore) -> Selector) {
    let s = setup(dir);
    let sel = sel(&s);
    let before_keys = keys_of(dir, &s);
    let report = s.forget(sel).unwrap();
    assert_eq!(report.forgotten.len(), 2, "both versions of the κ");
    assert_eq!(report.redacted_conversations.len(), 1);
    s.flush().unwrap();
    drop(s);
    // Reopen (sled rewrites its state on open) and scan every file.
    let s = MemoryStore::open(dir, MemoryConfig::durable()).unwrap();
    s.flush().unwrap();
    for needle in [SECRET, OLD_SECRET, "kumquat"] {
        assert_eq!(
            occurs(dir, needle.as_bytes()),
            Vec::<String>::new(),
            "{needle} still on disk"
        );
    }
    // Keys that decrypted the forgotten records (and the old conversation) are gone too,
    // so no old ciphertext left in sled's segments can be opened.
    let after_keys = keys_of(dir, &s);
    let dead: Vec<_> = before_keys
        .iter()
        .filter(|k| !after_keys.contains(k))
        .collect();
    assert_eq!(
        dead.len(),
        3,
        "two cell versions and the conversation's old record"
    );
    for k in dead {
        assert_eq!(
            occurs(dir, k),
            Vec::<String>::new(),
            "a destroyed key survives on disk"
        );
    }
    assert!(s.get("vault", "passphrase", None).is_none());
    assert!(s.history("vault", "passphrase").is_empty());
    for q in ["vault passphrase", SECRET, "kumquat", "passphrase"] {
        assert!(
            s.recall(q, None, 50)
                .iter()
                .all(|c| !c.cell.content.value.raw.contains("SECRET")),
            "recall({q}) returned it"
        );
    }
    let conv = s
        .read_conversation(&s.recall_conversations("vault passphrase", None, 1)[0].addr)
        .unwrap();
    assert!(!conv.transcript.contains(SECRET) && !conv.summary.contains(SECRET));
    assert_eq!(
        conv.facts.len(),
        1,
        "the extracted fact was removed, the other kept"
    );
    assert_eq!(conv.redactions, 1);
    let v = s.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problem);
    for (_, hash) in &report.forgotten {
        let proof = s.prove_forgotten(hash).unwrap();
        assert!(proof.holds(), "{proof:?}");
    }
    // Other cells are untouched.
    assert_eq!(
        s.get("user7", "token", None).unwrap().content.value.raw,
        "tok-00007"
    );
}

#[test]
fn forget_by_kappa_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    check_forgotten(dir.path(), |_| Selector::Kappa {
        subject: "Vault".into(),
        facet: "passphrase".into(),
    });
}

#[test]
fn forget_by_id_of_any_version_erases_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    check_forgotten(dir.path(), |s| {
        Selector::Id(s.history("vault", "passphrase")[0].id)
    });
}

#[test]
fn forget_by_query_uses_token_overlap() {
    let dir = tempfile::tempdir().unwrap();
    check_forgotten(dir.path(), |_| {
        Selector::Query("please forget the vault passphrase".into())
    });
}

#[test]
fn forget_of_nothing_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = MemoryStore::open(dir.path(), MemoryConfig::durable()).unwrap();
    s.remember(Fact::new("a", "b", "c")).unwrap();
    assert!(s
        .forget(Selector::Query("unrelated words entirely".into()))
        .is_err());
    assert!(s.forget(Selector::Id(999)).is_err());
    assert_eq!(s.lines().unwrap().len(), 1);
    assert!(s.prove_forgotten(&[0; 32]).is_err());
}

#[test]
fn keys_left_by_an_interrupted_forget_are_shredded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = MemoryStore::open(dir.path(), MemoryConfig::durable()).unwrap();
    s.remember(Fact::new("a", "b", "c")).unwrap();
    drop(s);
    // Simulate a crash after the database dropped a record but before its key was
    // destroyed: a key no record references.
    let keys = dir.path().join("keys.bin");
    let mut kb = std::fs::read(&keys).unwrap();
    kb.extend_from_slice(&[0xAB; 32]);
    std::fs::write(&keys, &kb).unwrap();
    let s = MemoryStore::open(dir.path(), MemoryConfig::durable()).unwrap();
    assert_eq!(occurs(dir.path(), &[0xAB; 32]), Vec::<String>::new());
    assert_eq!(s.get("a", "b", None).unwrap().content.value.raw, "c");
}
