//! Cells, history, as-of, idempotence, conversations, persistence (no embedder needed).

use engram_memory::{
    ExtractedFact, Fact, MemoryConfig, MemoryStore, Op, Remembered, Selector, Shape, Source,
    TurnInput,
};

const HOUR: i64 = 3_600_000_000;

fn open(dir: &std::path::Path) -> MemoryStore {
    MemoryStore::open(dir, MemoryConfig::durable()).unwrap()
}

#[test]
fn supersede_keeps_history_and_as_of_answers_each_point() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t0 = 1_700_000_000_000_000;
    let a = s
        .remember(Fact::new("build server", "ip", "10.0.0.5").valid_from(t0))
        .unwrap();
    let b = s
        .remember(Fact::new("Build  Server", "IP", "10.0.0.6").valid_from(t0 + HOUR))
        .unwrap();
    let c = s
        .remember(Fact::new("build server", "ip", "10.0.0.7").valid_from(t0 + 2 * HOUR))
        .unwrap();
    let d = s
        .remember(Fact::new("build server", "ip", "10.0.0.8").valid_from(t0 + 3 * HOUR))
        .unwrap();
    assert!(matches!(a, Remembered::Created(_)));
    assert_eq!(
        b,
        Remembered::Superseded {
            id: b.id(),
            previous: a.id()
        }
    );
    assert_eq!(
        c,
        Remembered::Superseded {
            id: c.id(),
            previous: b.id()
        }
    );
    assert_eq!(
        d,
        Remembered::Superseded {
            id: d.id(),
            previous: c.id()
        }
    );
    let at = |t: i64| {
        s.get("build server", "ip", Some(t))
            .map(|c| c.content.value.normalized)
    };
    assert_eq!(at(t0 - 1), None, "nothing held before the first value");
    assert_eq!(at(t0).as_deref(), Some("ip:10.0.0.5"));
    assert_eq!(at(t0 + HOUR - 1).as_deref(), Some("ip:10.0.0.5"));
    assert_eq!(at(t0 + HOUR).as_deref(), Some("ip:10.0.0.6"));
    assert_eq!(at(t0 + 2 * HOUR + 5).as_deref(), Some("ip:10.0.0.7"));
    assert_eq!(at(t0 + 30 * HOUR).as_deref(), Some("ip:10.0.0.8"));
    assert_eq!(
        s.get("build server", "ip", None).unwrap().content.value.raw,
        "10.0.0.8"
    );
    let h = s.history("build server", "ip");
    assert_eq!(h.len(), 4);
    assert_eq!(h[0].valid_to, Some(t0 + HOUR));
    assert_eq!(h[3].valid_to, None);
    // Current recall returns only the newest version.
    let r = s.recall("build server ip", None, 10);
    let ids: Vec<u64> = r.iter().map(|c| c.cell.id).collect();
    assert_eq!(ids, vec![d.id()]);
    assert!(r[0].features.kappa_match);
    let lines = s.lines().unwrap();
    assert_eq!(
        lines.iter().map(|l| l.op).collect::<Vec<_>>(),
        vec![Op::Remember, Op::Supersede, Op::Supersede, Op::Supersede]
    );
    assert!(s.verify().unwrap().ok());
}

#[test]
fn same_value_is_idempotent_by_normalised_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s
        .remember(Fact::new("Ada", "email", "Ada@Example.com"))
        .unwrap();
    let b = s
        .remember(Fact::new("ada", "Email", "Ada@EXAMPLE.COM "))
        .unwrap();
    assert_eq!(b, Remembered::Unchanged(a.id()));
    assert_eq!(s.lines().unwrap().len(), 1, "no duplicate line");
    let cell = s.get("ADA", "email", None).unwrap();
    assert_eq!(cell.content.value.shape, Shape::Email);
    assert_eq!(cell.content.value.normalized, "email:Ada@example.com");
    // Within one batch too.
    let out = s
        .remember_batch(vec![
            Fact::new("x", "n", "1,000"),
            Fact::new("x", "n", "1000"),
            Fact::new("x", "n", "1001"),
        ])
        .unwrap();
    assert!(matches!(out[0], Remembered::Created(_)));
    assert_eq!(out[1], Remembered::Unchanged(out[0].id()));
    assert_eq!(
        out[2],
        Remembered::Superseded {
            id: out[2].id(),
            previous: out[0].id()
        }
    );
}

#[test]
fn a_value_typed_by_a_capture_plugin_is_the_same_value() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s
        .remember(Fact::new("build server", "ip", "ip:10.0.0.7"))
        .unwrap();
    let cell = s.get("build server", "ip", None).unwrap();
    assert_eq!(cell.content.value.shape, Shape::Ip);
    assert_eq!(cell.content.value.raw, "10.0.0.7");
    assert_eq!(cell.content.value.normalized, "ip:10.0.0.7");
    assert_eq!(cell.content.text, "build server ip: 10.0.0.7");
    let b = s
        .remember(Fact::new("build server", "ip", "10.0.0.7"))
        .unwrap();
    assert_eq!(b, Remembered::Unchanged(a.id()));
}

#[test]
fn turns_are_recalled_by_label_after_reopen_and_redacted_by_forget() {
    let dir = tempfile::tempdir().unwrap();
    let turn = |label: &str, speaker: &str, text: &str| TurnInput {
        label: label.into(),
        speaker: speaker.into(),
        text: text.into(),
        time: Some(1_683_554_160_000_000),
    };
    let addr = {
        let s = open(dir.path());
        s.remember(Fact::new("Ann", "locker code", "Kx-5521"))
            .unwrap();
        s.store_turns(
            vec![
                turn("D1:1", "Ann", "Morning! How was the weekend?"),
                turn(
                    "D1:2",
                    "Bob",
                    "Great, we finally went kayaking on lake Tahoe.",
                ),
                turn("D1:3", "Ann", "My locker code is Kx-5521, keep it safe."),
            ],
            "Ann and Bob catch up",
            vec![],
            &Source::default(),
        )
        .unwrap()
    };
    let s = open(dir.path());
    let hits = s.recall_turns("Where did Bob go kayaking?", None, 2);
    assert_eq!(hits[0].label, "D1:2");
    assert_eq!((hits[0].addr, hits[0].index), (addr, 1));
    assert_eq!(hits[0].speaker, "Bob");
    assert!(hits[0].speaker_match && hits[0].lexical == 1.0);
    assert_eq!(hits[0].time, Some(1_683_554_160_000_000));
    let conv = s.read_conversation(&addr).unwrap();
    assert_eq!(conv.turns.len(), 3);
    assert!(conv.transcript.starts_with("Ann: Morning!"));
    // Forgetting the value scrubs it from the stored turns and the turn index.
    s.forget(Selector::Kappa {
        subject: "Ann".into(),
        facet: "locker code".into(),
    })
    .unwrap();
    assert!(s.recall_turns("Kx-5521", None, 3).is_empty());
    let conv = s.read_conversation(&addr).unwrap();
    assert!(conv.turns.iter().all(|t| !t.text.contains("Kx-5521")));
    assert!(s.verify().unwrap().ok());
}

#[test]
fn a_plain_transcript_is_kept_as_turns() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let addr = s
        .store_conversation(
            "user: my favourite tea is oolong\nassistant: noted, oolong it is\n\nuser: thanks",
            "tea",
            vec![],
            &Source::default(),
        )
        .unwrap();
    let turns = s.read_conversation(&addr).unwrap().turns;
    let spoken: Vec<(&str, &str)> = turns
        .iter()
        .map(|t| (t.speaker.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(
        spoken,
        vec![
            ("user", "my favourite tea is oolong"),
            ("assistant", "noted, oolong it is"),
            ("user", "thanks")
        ]
    );
    assert_eq!(s.recall_turns("favourite tea", None, 1)[0].index, 0);
}

#[test]
fn bad_input_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(s.remember(Fact::new("", "f", "v")).is_err());
    assert!(s.remember(Fact::new("s", "  ", "v")).is_err());
    assert!(s.remember(Fact::new("s", "f", " ")).is_err());
    let mut f = Fact::new("s", "f", "v");
    f.embedding = Some(vec![1.0; 4]);
    s.remember(f).unwrap();
    let mut g = Fact::new("s", "g", "v");
    g.embedding = Some(vec![1.0; 5]);
    assert!(
        s.remember(g).is_err(),
        "embedding width mismatch is refused"
    );
    assert_eq!(s.lines().unwrap().len(), 1);
    assert!(s
        .store_conversation("  ", "x", vec![], &Source::default())
        .is_err());
}

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let addr;
    let id;
    {
        let s = open(dir.path());
        id = s
            .remember(
                Fact::new("alice", "phone", "+1 555 010 2030")
                    .with_text("Alice's phone is +1 555 010 2030"),
            )
            .unwrap()
            .id();
        s.remember(Fact::new("alice", "city", "Lyon")).unwrap();
        s.remember(Fact::new("alice", "city", "Paris")).unwrap();
        addr = s
            .store_conversation(
                "user: my phone is +1 555 010 2030\nassistant: noted",
                "Alice gave her phone number",
                vec![ExtractedFact {
                    text: "Alice's phone is +1 555 010 2030".into(),
                    cell: Some(id),
                }],
                &Source {
                    session: Some("s1".into()),
                    turn: Some(3),
                },
            )
            .unwrap();
    }
    let s = open(dir.path());
    assert_eq!(
        s.get("alice", "phone", None)
            .unwrap()
            .content
            .value
            .normalized,
        "phone:+15550102030"
    );
    assert_eq!(s.history("alice", "city").len(), 2);
    assert_eq!(
        s.get("alice", "city", None).unwrap().content.value.raw,
        "Paris"
    );
    let conv = s.read_conversation(&addr).unwrap();
    assert!(conv.transcript.contains("assistant: noted"));
    assert_eq!(conv.facts[0].cell, Some(id));
    let gists = s.recall_conversations("phone number", None, 5);
    assert_eq!(gists.len(), 1);
    assert_eq!(gists[0].addr, addr);
    assert_eq!(gists[0].fact_count, 1);
    let st = s.stats();
    assert_eq!(
        (
            st.current_cells,
            st.versions,
            st.subjects,
            st.conversations,
            st.lines
        ),
        (2, 3, 1, 1, 4)
    );
    let v = s.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problem);
    assert_eq!((v.lines, v.cells, v.conversations), (4, 3, 1));
    // New ids continue after reopen; the same transcript is idempotent.
    let next = s.remember(Fact::new("bob", "role", "admin")).unwrap().id();
    assert!(next > id);
    assert_eq!(
        s.store_conversation(
            "user: my phone is +1 555 010 2030\nassistant: noted",
            "x",
            vec![],
            &Source::default()
        )
        .unwrap(),
        addr
    );
    assert_eq!(s.stats().lines, 5);
}

#[test]
fn lexical_anchor_finds_ids_without_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.remember(Fact::new("ticket", "number", "INC-4521").with_text("The open ticket is INC-4521"))
        .unwrap();
    s.remember(Fact::new("router", "ip", "192.168.1.1"))
        .unwrap();
    let r = s.recall("what about inc-4521?", None, 5);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].cell.content.value.raw, "INC-4521");
    assert!(r[0].features.via.has(engram_memory::Via::ANCHOR));
    assert!(r[0].features.lexical > 0.0);
    assert!(r[0].features.recency > 0.99);
    assert_eq!(
        s.recall("INC-4521", None, 5)[0].features.read_count,
        1,
        "read count increments"
    );
}

#[test]
fn reopening_right_after_drop_waits_for_the_lock_and_a_live_store_is_reported_in_use() {
    let dir = tempfile::tempdir().unwrap();
    // sled releases its file lock from a background thread after the last handle drops; a
    // reopen in the same instant must wait for it, not fail.
    for i in 0..30 {
        let s = open(dir.path());
        s.remember(Fact::new("loop", "i", i.to_string())).unwrap();
    }
    assert_eq!(
        open(dir.path())
            .get("loop", "i", None)
            .unwrap()
            .content
            .value
            .raw,
        "29"
    );
    let held = open(dir.path());
    let started = std::time::Instant::now();
    let Err(err) = MemoryStore::open(dir.path(), MemoryConfig::durable()) else {
        panic!("a second live store on the same folder must be refused");
    };
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(held);
}
