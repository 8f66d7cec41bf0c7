//! `tool-script` (plugins/tool-script): a Rhai interpreter compiled into a tool component,
//! built from source and loaded the way users load it. Ordinary scripts run; hostile ones
//! are stopped by the interpreter's limits (operations, call depth, sizes) or, past what the
//! interpreter sees, by the host's memory limit — and the host keeps serving other calls.

mod common;

use common::*;
use engram_plugins::{AnsweredBy, FailureKind, PluginKind, Services, ToolError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn script_args(code: &str) -> String {
    serde_json::json!({ "code": code }).to_string()
}

#[test]
fn runs_scripts_and_stops_hostile_ones_while_the_host_keeps_serving() {
    let host = host_with(Services::default());
    let script = load(&host, PluginKind::Tool, &default_plugin("tool-script"));
    let specs = script.tool_describe().value;
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].name, "script");
    let schema: serde_json::Value = serde_json::from_str(&specs[0].json_schema).unwrap();
    assert_eq!(schema["required"][0], "code");

    // Ordinary scripts: loops, functions, print capture, and the `input` binding.
    let run = |code: &str| script.tool_invoke("script", &script_args(code));
    let a = run("let x = 0; for i in 0..10 { x += i; } print(`sum ${x}`); x * 2");
    assert!(matches!(a.by, AnsweredBy::Plugin { ref name, .. } if name == "tool-script"));
    assert_eq!(a.value, Ok("sum 45\n90".to_string()));
    assert_eq!(
        run("fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(15)").value,
        Ok("610".to_string())
    );
    let with_input = serde_json::json!({"code": "input.a * input.b", "input": {"a": 6, "b": 7}});
    assert_eq!(
        script.tool_invoke("script", &with_input.to_string()).value,
        Ok("42".to_string())
    );
    assert!(matches!(
        run("let x = ;").value,
        Err(ToolError::Failed(m)) if m.starts_with("script error")
    ));
    assert!(matches!(
        script.tool_invoke("script", "{\"source\": 1}").value,
        Err(ToolError::InvalidArguments(_))
    ));
    assert!(matches!(
        script.tool_invoke("shell", "{}").value,
        Err(ToolError::UnknownTool(_))
    ));

    // Meanwhile, another slot is called continuously; every call must succeed.
    let calc = Arc::new(load(&host, PluginKind::Tool, &default_plugin("tool-calc")));
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (calc, stop, served, failed) =
            (calc.clone(), stop.clone(), served.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let a = calc.tool_invoke("calc", r#"{"expression":"6*7"}"#);
                if a.value == Ok("42".to_string()) {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Stopped by the interpreter's own limits: the plugin answers with an error naming it.
    // Loops that count operations may instead run into the host's call deadline first on
    // a loaded machine (`either`); then the host stops the call and it falls back.
    let hostile = [
        ("fn f(n) { f(n + 1) } f(0)", "nested calls", false),
        ("let s = \"x\"; loop { s += s; }", "size limit", false),
        ("loop { }", "operations", true),
        ("let n = 0; while true { n += 1; }", "operations", true),
        ("let a = []; loop { a.push(1); }", "size limit", true),
    ];
    for (code, limit, either) in hostile {
        let t = Instant::now();
        let a = run(code);
        let took = t.elapsed();
        match &a.by {
            AnsweredBy::Plugin { .. } => assert!(
                matches!(&a.value, Err(ToolError::Failed(m)) if m.contains(limit)),
                "{code}: {:?}",
                a.value
            ),
            AnsweredBy::Fallback(failure) if either => {
                assert!(
                    matches!(failure.kind, FailureKind::Timeout | FailureKind::OutOfFuel),
                    "{code}: stopped as {failure}"
                );
                assert!(
                    matches!(&a.value, Err(ToolError::Failed(m)) if m.contains("tool unavailable"))
                );
                // The slot backs off briefly after a failure.
                std::thread::sleep(Duration::from_millis(300));
            }
            other => panic!("{code}: expected the interpreter to stop it, got {other:?}"),
        }
        println!("{code}: stopped in {took:?} by {:?}", a.by);
        assert!(took < Duration::from_secs(3), "{code} took {took:?}");
    }

    // A memory bomb made of many strings, each within the string limit: stopped either by
    // the interpreter's aggregate size accounting or, past it, by the host's memory limit
    // (the call then falls back). Either way it never completes.
    let bomb = "let s = \"x\"; for i in 0..15 { s += s; } let a = []; \
                for i in 0..9000 { a.push(s + i); } a.len()";
    let t = Instant::now();
    let a = run(bomb);
    match &a.by {
        AnsweredBy::Plugin { .. } => assert!(
            matches!(&a.value, Err(ToolError::Failed(m)) if m.contains("size limit")),
            "memory bomb: {:?}",
            a.value
        ),
        AnsweredBy::Fallback(failure) => {
            assert!(
                matches!(
                    failure.kind,
                    FailureKind::MemoryLimit | FailureKind::Trap | FailureKind::Timeout
                ),
                "memory bomb stopped as {}: {failure}",
                failure.kind
            );
            assert!(
                matches!(&a.value, Err(ToolError::Failed(m)) if m.contains("tool unavailable"))
            );
        }
    }
    println!("memory bomb: stopped in {:?} by {:?}", t.elapsed(), a.by);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "memory bomb took {:?}",
        t.elapsed()
    );

    // The plugin serves again after its failures (the slot backs off briefly after one).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(run("40 + 2").value, Ok("42".to_string()));

    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "calls through the other slot failed"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
}
