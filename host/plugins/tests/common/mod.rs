//! Shared test support: build the guest workspaces from source (once per test
//! process) and create hosts.

#![allow(dead_code)]

use engram_plugins::{Grants, HostConfig, PluginHost, PluginKind, Services, Slot};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn cargo_build(workspace: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir)
        .output()
        .expect("run cargo for the guest workspace");
    assert!(
        out.status.success(),
        "building {} failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
        workspace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join("wasm32-wasip2/release")
}

/// Folder of the default plugins, built from `plugins/` with `cargo build --release`
/// exactly as `scripts/setup.sh` does.
pub fn default_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        cargo_build(&root.join("plugins"), &root.join("plugins/target"))
    })
}

/// Folder of the test-only hostile plugins (`plugins/hostile/`).
pub fn hostile_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        cargo_build(
            &root.join("plugins/hostile"),
            &root.join("plugins/target/hostile"),
        )
    })
}

/// Path of a default plugin component by crate name (`judge-jaccard`).
pub fn default_plugin(name: &str) -> PathBuf {
    default_plugins().join(format!("{}.wasm", name.replace('-', "_")))
}

/// Path of a hostile plugin component by short name (`spin`).
pub fn hostile_plugin(name: &str) -> PathBuf {
    hostile_plugins().join(format!("hostile_{}.wasm", name.replace('-', "_")))
}

/// A host configuration for tests: a compile cache shared by the test
/// binaries of this target dir (compiling in a debug build is slow).
pub fn test_config() -> HostConfig {
    HostConfig {
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        pool_instances: 64,
        ..HostConfig::default()
    }
}

/// A host with the test configuration and `services`.
pub fn host_with(services: Services) -> PluginHost {
    PluginHost::new(test_config(), services).expect("plugin host")
}

/// Load `path` as `kind` with no grants.
pub fn load(host: &PluginHost, kind: PluginKind, path: &Path) -> Slot {
    host.load(kind, path, &Grants::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// A candidate with the given text and similarity.
pub fn candidate(
    id: &str,
    text: &str,
    similarity: f32,
    age_seconds: f64,
) -> engram_plugins::Candidate {
    engram_plugins::Candidate {
        id: id.into(),
        text: text.into(),
        features: engram_plugins::Features {
            similarity,
            recency: 0.0,
            novelty: 0.5,
            lexical_overlap: 0.0,
            kappa_match: false,
            age_seconds,
        },
    }
}

/// One judge behaviour case: query, candidate texts, expected (accept, confidence).
pub type JudgeCase = (&'static str, Vec<&'static str>, Vec<(bool, f32)>);

/// The behaviour every judge-jaccard implementation (Rust, Python, JS) must show.
pub fn judge_cases() -> Vec<JudgeCase> {
    vec![
        (
            "what is my server's ip?",
            vec!["My server's IP is 10.0.0.7", "I live in Lisbon"],
            vec![(true, 2.0 / 3.0), (false, 0.0)],
        ),
        (
            "Where do I live?",
            vec!["I live in Lisbon"],
            vec![(false, 0.5)],
        ),
        (
            "servers ip",
            vec!["My server's IP is 10.0.0.7"],
            vec![(true, 2.0 / 3.0)],
        ),
        (
            "name Ana",
            vec!["My name is Ana", "Ana's name"],
            vec![(true, 1.0), (true, 1.0)],
        ),
        ("the a of", vec!["is it"], vec![(false, 0.0)]),
        ("anything", vec![], vec![]),
    ]
}

/// Run [`judge_cases`] through a judge slot; every call must be answered by the plugin.
pub fn check_judge_behaviour(slot: &Slot) {
    for (query, texts, expected) in judge_cases() {
        let cands: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| candidate(&format!("c{i}"), t, 0.5, 1.0))
            .collect();
        let a = slot.judge(query, &cands);
        assert!(
            matches!(a.by, engram_plugins::AnsweredBy::Plugin { .. }),
            "{query}: {:?}",
            a.by
        );
        let got: Vec<(bool, f32)> = a.value.iter().map(|v| (v.accept, v.confidence)).collect();
        assert_eq!(got.len(), expected.len(), "{query}");
        for ((ga, gc), (ea, ec)) in got.iter().zip(&expected) {
            assert_eq!(ga, ea, "{query}: {got:?} vs {expected:?}");
            assert!((gc - ec).abs() < 1e-5, "{query}: {got:?} vs {expected:?}");
        }
        for (v, (accept, _)) in a.value.iter().zip(&expected) {
            if *accept {
                assert!(
                    v.evidence.starts_with("jaccard "),
                    "auditable evidence: {}",
                    v.evidence
                );
            }
        }
    }
}
