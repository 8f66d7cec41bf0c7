//! Hostile plugins (built from `plugins/hostile/` by this test) are each
//! stopped within their limit, their calls fall back, and concurrent calls
//! through another slot keep succeeding.

mod common;

use common::*;
use engram_plugins::{
    fallback, AnsweredBy, FailureKind, HostConfig, Limits, PluginHost, PluginKind, Services,
    ToolError,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn hostile_host() -> PluginHost {
    let config = HostConfig {
        limits: Limits {
            // Every slot of the host shares this deadline, the good one included: on a
            // loaded 2-core machine a benign call starved of CPU for 200 ms timed out and
            // failed the test (about once in ten runs under load ≈ 10), so it leaves room.
            call_timeout: Duration::from_millis(1000),
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
        quarantine_after: 3,
        backoff_base: Duration::from_millis(1),
        ..test_config()
    };
    PluginHost::new(config, Services::default()).expect("host")
}

#[test]
fn each_hostile_plugin_is_stopped_and_falls_back_while_other_slots_serve() {
    let host = hostile_host();
    let good = Arc::new(load(
        &host,
        PluginKind::Judge,
        &default_plugin("judge-jaccard"),
    ));
    let cands = vec![
        candidate("a", "My server's IP is 10.0.0.7", 0.8, 1.0),
        candidate("b", "I live in Lisbon", 0.3, 1.0),
    ];

    // Background clients on the good slot for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (good, stop, served, cands) =
                (good.clone(), stop.clone(), served.clone(), cands.clone());
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let a = good.judge("what is my server's ip?", &cands);
                    match a.by {
                        AnsweredBy::Plugin { .. } if a.value[0].accept && !a.value[1].accept => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        other => bad.push(format!("{other:?} {:?}", a.value)),
                    }
                }
                bad
            })
        })
        .collect();

    let judges = [
        ("spin", FailureKind::Timeout),
        ("membomb", FailureKind::MemoryLimit),
        ("recursion", FailureKind::StackOverflow),
        ("panic", FailureKind::Trap),
        ("flood", FailureKind::OutputLimit),
    ];
    for (name, expected) in judges {
        let slot = load(&host, PluginKind::Judge, &hostile_plugin(name));
        let before = served.load(Ordering::Relaxed);
        let t = Instant::now();
        let a = slot.judge("attack: what is my server's ip?", &cands);
        let took = t.elapsed();
        let AnsweredBy::Fallback(f) = &a.by else {
            panic!("{name}: expected a fallback, got {:?}", a.by)
        };
        assert_eq!(f.kind, expected, "{name}: {f}\nstderr: {}", f.stderr);
        assert_eq!(
            a.value,
            fallback::judge("attack: what is my server's ip?", &cands),
            "{name}: built-in judge answered"
        );
        // The deadline is 1 s; allow for a loaded 2-core CI machine.
        assert!(took < Duration::from_secs(4), "{name} took {took:?}");
        if name == "panic" {
            assert!(
                f.stderr.contains("hostile judge panicked on purpose"),
                "stderr captured: {:?}",
                f.stderr
            );
            assert!(
                f.backtrace
                    .as_deref()
                    .is_some_and(|b| b.contains("hostile_panic")),
                "backtrace: {:?}",
                f.backtrace
            );
        }
        let h = slot.health();
        assert_eq!(
            (h.calls, h.failures, h.consecutive_failures),
            (1, 1, 1),
            "{name}: {h:?}"
        );
        // The slot keeps working for benign calls once the back-off has passed.
        std::thread::sleep(Duration::from_millis(5));
        let ok = slot.judge("benign", &cands);
        assert!(
            matches!(ok.by, AnsweredBy::Plugin { .. }),
            "{name} after failure: {:?}",
            ok.by
        );
        eprintln!(
            "{name}: stopped as {} in {took:?}; good slot served {} calls meanwhile",
            f.kind,
            served.load(Ordering::Relaxed) - before
        );
    }

    {
        let slot = load(&host, PluginKind::Tool, &hostile_plugin("passwd"));
        let a = slot.tool_invoke("read", "{}");
        let AnsweredBy::Fallback(f) = &a.by else {
            panic!("passwd: expected a fallback, got {:?} {:?}", a.by, a.value)
        };
        assert_eq!(f.kind, FailureKind::CapabilityDenied, "passwd: {f}");
        assert!(
            f.message.contains("wasi:filesystem/preopens"),
            "{}",
            f.message
        );
        assert!(
            matches!(&a.value, Err(ToolError::Failed(m)) if m.contains("tool unavailable")),
            "{:?}",
            a.value
        );
        assert!(
            !format!("{:?}", a.value).contains("root:"),
            "no file content leaks"
        );
        eprintln!("passwd: stopped as {}: {}", f.kind, f.message);
    }
    {
        // A plugin granted no environment that reaches for it is stopped: the
        // read answers empty (nothing of the host's leaks) and the call is
        // failed afterwards, falling back to the built-in tool answer.
        std::env::set_var("ENGRAM_TEST_SECRET", "hunter2");
        let slot = load(&host, PluginKind::Tool, &hostile_plugin("env"));
        let a = slot.tool_invoke("env", "{}");
        let AnsweredBy::Fallback(f) = &a.by else {
            panic!("env: expected a fallback, got {:?} {:?}", a.by, a.value)
        };
        assert_eq!(f.kind, FailureKind::CapabilityDenied, "env: {f}");
        assert!(f.message.contains("wasi:cli/environment"), "{}", f.message);
        let shown = format!("{:?} {f}", a.value);
        assert!(
            !shown.contains("hunter2") && !shown.contains("PATH="),
            "host env leaked: {shown}"
        );
        assert!(
            matches!(&a.value, Err(ToolError::Failed(m)) if m.contains("tool unavailable")),
            "{:?}",
            a.value
        );
        eprintln!("env: stopped as {}: {}", f.kind, f.message);
    }

    stop.store(true, Ordering::Relaxed);
    let mut bad = Vec::new();
    for c in clients {
        bad.extend(c.join().expect("client thread"));
    }
    assert!(bad.is_empty(), "good slot calls failed: {bad:?}");
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(good.health().failures, 0);
}

#[test]
fn repeated_failures_quarantine_the_plugin_and_swap_releases_it() {
    let host = hostile_host();
    let slot = load(&host, PluginKind::Judge, &hostile_plugin("panic"));
    let cands = vec![candidate("a", "x", 0.5, 1.0)];
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(20)); // past the back-off
        let a = slot.judge("attack", &cands);
        assert!(
            matches!(&a.by, AnsweredBy::Fallback(f) if f.kind == FailureKind::Trap),
            "call {i}: {:?}",
            a.by
        );
    }
    assert!(slot.health().quarantined);
    std::thread::sleep(Duration::from_millis(20));
    let a = slot.judge("benign", &cands);
    assert!(
        matches!(&a.by, AnsweredBy::Fallback(f) if f.kind == FailureKind::Unavailable),
        "{:?}",
        a.by
    );
    slot.swap_path(&default_plugin("judge-jaccard"), &Default::default())
        .expect("swap");
    assert!(!slot.health().quarantined);
    let a = slot.judge("benign", &cands);
    assert!(
        matches!(&a.by, AnsweredBy::Plugin { name, .. } if name == "judge-jaccard"),
        "{:?}",
        a.by
    );
}

#[test]
fn granted_directory_is_readable_and_nothing_else() {
    use engram_plugins::Grants;
    // The passwd tool asks for nothing: even with a grant it gets no folder.
    let dir = tempdir();
    std::fs::write(dir.join("passwd"), "granted-content").unwrap();
    let mut grants = Grants::default();
    grants.read_dirs.insert("/etc".into(), dir.clone());
    let host = hostile_host();
    let slot = host
        .load(PluginKind::Tool, &hostile_plugin("passwd"), &grants)
        .expect("load");
    assert!(
        slot.current().capabilities.read_dirs.is_empty(),
        "not asked → not granted"
    );
    let a = slot.tool_invoke("read", "{}");
    assert!(matches!(&a.by, AnsweredBy::Fallback(f) if f.kind == FailureKind::CapabilityDenied));

    // With a manifest that asks for /etc and a grant mapping it to a temp folder,
    // the plugin reads the granted file, read-only, and never the host's /etc.
    let component = dir.join("reader.wasm");
    std::fs::copy(hostile_plugin("passwd"), &component).unwrap();
    std::fs::write(
        dir.join("reader.toml"),
        "name = \"reader\"\nkind = \"tool\"\n[capabilities]\nread_dirs = [\"/etc\"]\n",
    )
    .unwrap();
    let slot = host
        .load(PluginKind::Tool, &component, &grants)
        .expect("load with manifest");
    let a = slot.tool_invoke("read", "{}");
    assert!(matches!(&a.by, AnsweredBy::Plugin { .. }), "{:?}", a.by);
    assert_eq!(a.value, Ok("granted-content".to_string()));
    // Asked but not granted: nothing.
    assert_eq!(slot.current().capabilities.read_dirs.len(), 1);
    let slot = host
        .load(PluginKind::Tool, &component, &Default::default())
        .expect("load");
    let a = slot.tool_invoke("read", "{}");
    assert!(
        matches!(&a.by, AnsweredBy::Fallback(f) if f.kind == FailureKind::CapabilityDenied),
        "{:?}",
        a.by
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir() -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "grants-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn granted_env_vars_are_the_only_ones_visible() {
    use engram_plugins::Grants;
    let dir = tempdir();
    let component = dir.join("envy.wasm");
    std::fs::copy(hostile_plugin("env"), &component).unwrap();
    std::fs::write(
        dir.join("envy.toml"),
        "kind = \"tool\"\n[capabilities]\nenv = [\"LANG\", \"HOME\"]\n",
    )
    .unwrap();
    let mut grants = Grants::default();
    grants.env.insert("LANG".into(), "C.UTF-8".into());
    let host = hostile_host();
    let slot = host
        .load(PluginKind::Tool, &component, &grants)
        .expect("load");
    let seen = slot.tool_invoke("env", "{}").value.expect("answers");
    assert_eq!(
        seen.lines().filter(|l| l.contains('=')).collect::<Vec<_>>(),
        vec!["LANG=C.UTF-8"],
        "asked ∧ granted only: {seen}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
