//! The compiled-component cache, and the optional mechanisms (fuel, cache,
//! pooling) whose "off" changes no answer.

mod common;

use common::*;
use engram_plugins::{
    AnsweredBy, FailureKind, HostConfig, Limits, LoadPath, PluginHost, PluginKind, Services,
};
use std::path::PathBuf;

fn fresh_dir(tag: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn host(cache: Option<PathBuf>, fuel: bool, pooling: bool) -> PluginHost {
    PluginHost::new(
        HostConfig {
            cache_dir: cache,
            fuel,
            pooling,
            pool_instances: 16,
            ..HostConfig::default()
        },
        Services::default(),
    )
    .expect("host")
}

#[test]
fn second_load_comes_from_the_cache_and_a_corrupt_entry_is_recompiled() {
    let dir = fresh_dir("cache");
    let path = default_plugin("judge-jaccard");
    let first = host(Some(dir.clone()), false, true)
        .prepare(PluginKind::Judge, &path, &Default::default())
        .unwrap();
    assert_eq!(first.load_path, LoadPath::Compiled);
    let second = host(Some(dir.clone()), false, true)
        .prepare(PluginKind::Judge, &path, &Default::default())
        .unwrap();
    assert_eq!(second.load_path, LoadPath::Cached);
    let q = "what is my server's ip?";
    let c = vec![candidate("a", "My server's IP is 10.0.0.7", 0.8, 1.0)];
    assert_eq!(first.judge(q, &c).unwrap(), second.judge(q, &c).unwrap());

    // Fuel changes the compiled code: a separate entry, never the other one.
    let fueled = host(Some(dir.clone()), true, true)
        .prepare(PluginKind::Judge, &path, &Default::default())
        .unwrap();
    assert_eq!(fueled.load_path, LoadPath::Compiled);
    let entries = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(entries, 2);

    // Tamper with every entry: the digest check rejects it and the host recompiles.
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "cwasm") {
            let mut bytes = std::fs::read(&p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let third = host(Some(dir.clone()), false, true)
        .prepare(PluginKind::Judge, &path, &Default::default())
        .unwrap();
    assert_eq!(
        third.load_path,
        LoadPath::Compiled,
        "tampered entry must not be deserialized"
    );
    assert_eq!(third.judge(q, &c).unwrap(), first.judge(q, &c).unwrap());
    let fourth = host(Some(dir.clone()), false, true)
        .prepare(PluginKind::Judge, &path, &Default::default())
        .unwrap();
    assert_eq!(
        fourth.load_path,
        LoadPath::Cached,
        "rewritten entry is valid again"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fuel_cache_and_pooling_off_change_no_answer() {
    let q = "what is my server's ip?";
    let c = vec![
        candidate("a", "My server's IP is 10.0.0.7", 0.8, 1.0),
        candidate("b", "I live in Lisbon", 0.3, 100.0),
    ];
    let text = "My server's IP is 10.0.0.7. I live in Lisbon";
    let answers = |h: &PluginHost| {
        let judge = load(h, PluginKind::Judge, &default_plugin("judge-jaccard"));
        let rank = load(
            h,
            PluginKind::RecallPolicy,
            &default_plugin("recall-concert"),
        );
        let capture = load(h, PluginKind::Capture, &default_plugin("capture-facts"));
        let j = judge.judge(q, &c);
        let r = rank.rank(q, &c);
        let f = capture.capture(text);
        for by in [&j.by, &r.by, &f.by] {
            assert!(matches!(by, AnsweredBy::Plugin { .. }), "{by:?}");
        }
        (j.value, r.value, f.value)
    };
    let cache = fresh_dir("flags");
    let baseline = answers(&host(None, false, false));
    assert_eq!(answers(&host(None, true, false)), baseline, "fuel on");
    assert_eq!(
        answers(&host(Some(cache.clone()), false, false)),
        baseline,
        "cache on"
    );
    assert_eq!(answers(&host(None, false, true)), baseline, "pooling on");
    assert_eq!(
        answers(&host(Some(cache.clone()), true, true)),
        baseline,
        "all on"
    );
    std::fs::remove_dir_all(&cache).ok();
}

#[test]
fn fuel_budget_stops_a_spinning_plugin_deterministically() {
    let h = PluginHost::new(
        HostConfig {
            fuel: true,
            limits: Limits {
                fuel_per_call: 5_000_000,
                call_timeout: std::time::Duration::from_secs(30),
                ..Limits::default()
            },
            ..test_config()
        },
        Services::default(),
    )
    .unwrap();
    let slot = load(&h, PluginKind::Judge, &hostile_plugin("spin"));
    let a = slot.judge("attack", &[candidate("a", "x", 0.5, 1.0)]);
    assert!(
        matches!(&a.by, AnsweredBy::Fallback(f) if f.kind == FailureKind::OutOfFuel),
        "{:?}",
        a.by
    );
}
