//! The Python (componentize-py) and JavaScript (componentize-js) example
//! judges, built from `examples/` by this test, pass the same behaviour tests
//! as the Rust judge-jaccard.
//!
//! Needs `componentize-py` (in `.venv`, or `COMPONENTIZE_PY`) and Node with
//! `examples/js-judge/node_modules` (`npm ci` there); `scripts/setup-ci.sh`
//! installs both. The compiler's crates are optimised in the dev profile (see
//! the workspace Cargo.toml), so these run in the debug test suite.

mod common;

use common::*;
use engram_plugins::{LoadPath, PluginKind, Services};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn out_dir() -> PathBuf {
    let d = repo_root().join("plugins/target/examples");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn python_judge() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let out = out_dir().join("judge_py.wasm");
        let status = Command::new(repo_root().join("examples/python-judge/build.sh"))
            .arg(&out)
            .status()
            .expect("run examples/python-judge/build.sh");
        assert!(status.success(), "building the Python judge failed: run scripts/setup-ci.sh (installs componentize-py into .venv)");
        out
    })
}

fn js_judge() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let out = out_dir().join("judge_js.wasm");
        let dir = repo_root().join("examples/js-judge");
        let status = Command::new("node")
            .current_dir(&dir)
            .arg("build.mjs")
            .arg(&out)
            .status()
            .expect("run node examples/js-judge/build.mjs");
        assert!(
            status.success(),
            "building the JS judge failed: run scripts/setup-ci.sh (npm ci in examples/js-judge)"
        );
        out
    })
}

#[test]
fn python_judge_passes_the_rust_judge_behaviour_tests() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Judge, python_judge());
    check_judge_behaviour(&slot);
    // The cache makes the next load fast.
    let again = host
        .prepare(PluginKind::Judge, python_judge(), &Default::default())
        .unwrap();
    assert_eq!(again.load_path, LoadPath::Cached);
}

#[test]
fn javascript_judge_passes_the_rust_judge_behaviour_tests() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Judge, js_judge());
    check_judge_behaviour(&slot);
    let again = host
        .prepare(PluginKind::Judge, js_judge(), &Default::default())
        .unwrap();
    assert_eq!(again.load_path, LoadPath::Cached);
}

#[test]
fn rust_python_and_js_judges_agree_and_hot_swap_into_one_slot() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Judge, &default_plugin("judge-jaccard"));
    for path in [python_judge(), js_judge(), &default_plugin("judge-jaccard")] {
        let r = slot.swap_path(path, &Default::default()).expect("swap");
        assert_eq!(slot.current().hash, r.new_hash);
        check_judge_behaviour(&slot);
    }
}
