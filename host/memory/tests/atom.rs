//! `.atom` round trip and refusal of truncated or edited files.

use engram_memory::atom::{decode_file, encode_file};
use engram_memory::{
    ExtractedFact, Fact, MemoryConfig, MemoryError, MemoryStore, RecallPolicy, Selector, Source,
};
use std::path::Path;

fn unit(seed: u32, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 1000) as f32 / 500.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn source_store(dir: &Path) -> MemoryStore {
    let s = MemoryStore::open(dir, MemoryConfig::durable()).unwrap();
    s.set_policy(RecallPolicy {
        window: 5,
        ..RecallPolicy::default()
    })
    .unwrap();
    let mut facts = Vec::new();
    for i in 0..300u32 {
        let mut f = Fact::new(
            format!("host{}", i % 60),
            format!("facet{}", i / 60),
            format!("value-{i}"),
        );
        f.embedding = Some(unit(i, 16));
        facts.push(f);
    }
    s.remember_batch(facts).unwrap();
    let mut f = Fact::new("host1", "facet0", "value-changed");
    f.embedding = Some(unit(9999, 16));
    s.remember(f).unwrap();
    s.forget(Selector::Kappa {
        subject: "host2".into(),
        facet: "facet1".into(),
    })
    .unwrap();
    s.store_conversation(
        "user: hello there\nassistant: hi",
        "a greeting",
        vec![ExtractedFact {
            text: "hello".into(),
            cell: None,
        }],
        &Source::default(),
    )
    .unwrap();
    s
}

fn answers(s: &MemoryStore) -> Vec<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for i in 0..40u32 {
        let q = unit(i * 7, 16);
        let r = s.recall(&format!("host{} value-{}", i % 60, i * 7), Some(&q), 5);
        out.push(
            r.into_iter()
                .map(|c| (c.cell.id, c.cell.content.value.raw))
                .collect(),
        );
    }
    for i in 0..60 {
        for f in 0..5 {
            out.push(
                s.history(&format!("host{i}"), &format!("facet{f}"))
                    .into_iter()
                    .map(|c| (c.id, c.content.value.raw))
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn export_import_gives_identical_answers() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let file = a.path().join("memory.atom");
    let src = source_store(&a.path().join("store"));
    let seal = src.export_atom(&file).unwrap();
    assert_eq!(seal.count, src.lines().unwrap().len() as u64);
    let dst = MemoryStore::open(b.path(), MemoryConfig::durable()).unwrap();
    let rep = dst.import_atom(&file).unwrap();
    assert_eq!(rep.lines, seal.count);
    assert_eq!(answers(&src), answers(&dst));
    assert_eq!(dst.policy().window, 5, "policy travels with the file");
    assert!(
        dst.get("host2", "facet1", None).is_none(),
        "forgotten stays forgotten"
    );
    let gist = &dst.recall_conversations("greeting", None, 1)[0];
    assert!(dst
        .read_conversation(&gist.addr)
        .unwrap()
        .transcript
        .contains("hello there"));
    let v = dst.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problem);
    assert_eq!(v.lines, seal.count + 1, "plus the import line");
    // The imported chain continues: a new write verifies, and survives reopen.
    dst.remember(Fact::new("new", "fact", "1")).unwrap();
    drop(dst);
    let dst = MemoryStore::open(b.path(), MemoryConfig::durable()).unwrap();
    assert!(dst.verify().unwrap().ok());
    assert_eq!(
        dst.get("host1", "facet0", None).unwrap().content.value.raw,
        "value-changed"
    );
    // Importing into a store that is not empty is refused.
    assert!(matches!(
        dst.import_atom(&file),
        Err(MemoryError::AtomRefused { .. })
    ));
}

fn refused(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.atom");
    std::fs::write(&f, bytes).unwrap();
    let s = MemoryStore::open(dir.path().join("s"), MemoryConfig::durable()).unwrap();
    match s.import_atom(&f) {
        Err(e @ MemoryError::AtomRefused { .. }) => {
            assert_eq!(s.lines().unwrap().len(), 0, "nothing written on refusal");
            e.to_string()
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn truncated_or_edited_files_are_refused_with_the_reason() {
    let a = tempfile::tempdir().unwrap();
    let file = a.path().join("m.atom");
    source_store(&a.path().join("store"))
        .export_atom(&file)
        .unwrap();
    let good = std::fs::read(&file).unwrap();

    assert!(refused(&good[..good.len() / 2]).contains("truncated"));
    assert!(refused(&good[..10]).contains("truncated"));
    let mut more = good.clone();
    more.push(0);
    assert!(refused(&more).contains("unexpected bytes"));
    let mut magic = good.clone();
    magic[0] = b'X';
    assert!(refused(&magic).contains("magic"));
    let mut ver = good.clone();
    ver[12] = 9;
    assert!(refused(&ver).contains("version"));
    // Any single edited byte in the body or checksum: checksum mismatch.
    for at in (24..good.len()).step_by(good.len() / 40) {
        let mut e = good.clone();
        e[at] ^= 0x04;
        assert!(refused(&e).contains("checksum"), "edit at {at}");
    }

    // An editor who also recomputes the checksum is caught by the content checks.
    let path = Path::new("m.atom");
    let (body, _) = decode_file(path, &good).unwrap();
    let mut edited = body.clone();
    let rec = edited
        .records
        .iter_mut()
        .find(|r| r.key[0] == b'C')
        .unwrap();
    let at = rec.content.windows(6).position(|w| w == b"value-").unwrap();
    rec.content[at] = b'V';
    assert!(refused(&encode_file(&edited)).contains("does not match its memory line"));

    let mut edited = body.clone();
    edited.lines.remove(3);
    let msg = refused(&encode_file(&edited));
    assert!(msg.contains("line 3"), "{msg}");

    let mut edited = body.clone();
    edited.seal.count -= 1;
    assert!(refused(&encode_file(&edited)).contains("seal"));
}

#[test]
fn keyed_seal_is_checked_on_import() {
    let a = tempfile::tempdir().unwrap();
    let file = a.path().join("k.atom");
    let s = MemoryStore::open(
        a.path().join("s"),
        MemoryConfig::durable().with_seal_key(b"k1".to_vec()),
    )
    .unwrap();
    s.remember(Fact::new("a", "b", "c")).unwrap();
    s.export_atom(&file).unwrap();
    let other = tempfile::tempdir().unwrap();
    let wrong = MemoryStore::open(
        other.path(),
        MemoryConfig::durable().with_seal_key(b"k2".to_vec()),
    )
    .unwrap();
    let e = wrong.import_atom(&file).unwrap_err().to_string();
    assert!(e.contains("seal key"), "{e}");
    let right_dir = tempfile::tempdir().unwrap();
    let right = MemoryStore::open(
        right_dir.path(),
        MemoryConfig::durable().with_seal_key(b"k1".to_vec()),
    )
    .unwrap();
    right.import_atom(&file).unwrap();
    assert!(right.verify().unwrap().ok());
}
