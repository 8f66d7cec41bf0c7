//! The state signature (ring products by the dual-prime NTT) compares what two stores know:
//! equal however the facts were learned (order, updates, forgets, `.atom` import), different
//! as soon as one current fact differs.

use engram_memory::{Fact, MemoryConfig, MemoryStore, Selector};
use std::path::Path;

fn open(dir: &Path) -> MemoryStore {
    MemoryStore::open(dir, MemoryConfig::durable()).unwrap()
}

fn facts() -> Vec<(String, String, String)> {
    (0..40)
        .map(|i| {
            (
                format!("host{}", i % 10),
                ["ip", "owner", "room", "os"][i / 10].to_string(),
                if i / 10 == 0 {
                    format!("10.0.{}.{}", i, i + 1)
                } else {
                    format!("value {i}")
                },
            )
        })
        .collect()
}

fn remember(store: &MemoryStore, (subject, facet, value): &(String, String, String)) {
    store
        .remember(Fact::new(subject.as_str(), facet.as_str(), value.as_str()))
        .unwrap();
}

#[test]
fn same_knowledge_same_signature_whatever_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let all = facts();

    // A: every fact once, in order.
    let a = open(&tmp.path().join("a"));
    for f in &all {
        remember(&a, f);
    }

    // B: reverse order, every fact first stated with a wrong value and then corrected,
    // plus a fact that is learned and forgotten again.
    let b = open(&tmp.path().join("b"));
    remember(&b, &("scratch".into(), "note".into(), "temporary".into()));
    for f in all.iter().rev() {
        remember(&b, &(f.0.clone(), f.1.clone(), format!("{} (old)", f.2)));
        remember(&b, f);
    }
    b.forget(Selector::Kappa {
        subject: "scratch".into(),
        facet: "note".into(),
    })
    .unwrap();
    assert_ne!(
        a.seal().unwrap().head,
        b.seal().unwrap().head,
        "the histories differ"
    );
    assert_eq!(a.state_signature(), b.state_signature());
    assert_eq!(a.state_signature().cells(), all.len());

    // C: A's memory carried over in an .atom file.
    let file = tmp.path().join("a.atom");
    a.export_atom(&file).unwrap();
    let c = open(&tmp.path().join("c"));
    c.import_atom(&file).unwrap();
    assert_eq!(a.state_signature().hex(), c.state_signature().hex());

    // One current value different: the signature differs; restoring it restores equality.
    remember(&c, &(all[3].0.clone(), all[3].1.clone(), "10.9.9.9".into()));
    assert_ne!(a.state_signature(), c.state_signature());
    remember(&c, &all[3]);
    assert_eq!(a.state_signature(), c.state_signature());
}

#[test]
fn a_forgotten_fact_leaves_the_signature_of_never_having_known_it() {
    let tmp = tempfile::tempdir().unwrap();
    let all = facts();
    let knew = open(&tmp.path().join("knew"));
    let never = open(&tmp.path().join("never"));
    for f in &all {
        remember(&knew, f);
        if f.0 != "host7" || f.1 != "room" {
            remember(&never, f);
        }
    }
    assert_ne!(knew.state_signature(), never.state_signature());
    knew.forget(Selector::Kappa {
        subject: "host7".into(),
        facet: "room".into(),
    })
    .unwrap();
    assert_eq!(knew.state_signature(), never.state_signature());
}

#[test]
fn signature_is_incremental() {
    // The store's signature equals the empty signature plus each current fact's term, so a
    // client can maintain it write by write.
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut running = engram_memory::StateSignature::empty();
    for f in facts() {
        remember(&store, &f);
        let value = engram_memory::TypedValue::parse(&f.2).normalized;
        running.add(&f.0, &f.1, &value);
    }
    assert_eq!(store.state_signature(), running);
}
