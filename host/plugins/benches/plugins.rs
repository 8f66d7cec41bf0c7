//! `cargo bench -p engram-plugins --bench plugins`: plugin call overhead,
//! fresh-instance calls, and cold compile vs cached load, printed as a table.
//! (`engram bench plugins` measures the same through the bench framework.)
//! Needs the default plugins built (`scripts/setup.sh`); the Python and JS
//! example judges are included when `plugins/target/examples/*.wasm` exist.

use engram_plugins::{
    fallback, Candidate, Features, Grants, HostConfig, LoadPath, PluginHost, PluginKind, Services,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn candidates(n: usize) -> Vec<Candidate> {
    let texts = [
        "My server's IP is 10.0.0.7",
        "I live in Lisbon",
        "My name is Ana",
        "I work at Acme",
    ];
    (0..n)
        .map(|i| Candidate {
            id: format!("c{i}"),
            text: texts[i % texts.len()].to_string(),
            features: Features {
                similarity: 0.5,
                recency: 0.5,
                novelty: 0.5,
                lexical_overlap: 0.0,
                kappa_match: false,
                age_seconds: 60.0,
            },
        })
        .collect()
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (p(0.5), p(0.99))
}

fn time_calls(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 + 1 {
        f();
    }
    percentiles(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

fn load_times(path: &Path, kind: PluginKind, repeats: usize) -> ((f64, f64), (f64, f64)) {
    let (mut compile, mut cached) = (Vec::new(), Vec::new());
    for r in 0..repeats {
        let dir =
            std::env::temp_dir().join(format!("engram-plugin-bench-{}-{r}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = || HostConfig {
            cache_dir: Some(dir.clone()),
            pool_instances: 8,
            ..HostConfig::default()
        };
        let host = PluginHost::new(cfg(), Services::default()).unwrap();
        let t = Instant::now();
        let l = host.prepare(kind, path, &Grants::default()).unwrap();
        compile.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(l.load_path, LoadPath::Compiled);
        let host = PluginHost::new(cfg(), Services::default()).unwrap();
        let t = Instant::now();
        let l = host.prepare(kind, path, &Grants::default()).unwrap();
        cached.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(l.load_path, LoadPath::Cached);
        let _ = std::fs::remove_dir_all(&dir);
    }
    (percentiles(compile), percentiles(cached))
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugins = root.join("plugins/target/wasm32-wasip2/release");
    let examples = root.join("plugins/target/examples");
    let quick = std::env::args().any(|a| a == "--quick");
    let calls = if quick { 2_000 } else { 100_000 };
    let query = "what is my server's ip?";

    let host = PluginHost::new(
        HostConfig {
            pool_instances: 64,
            ..HostConfig::default()
        },
        Services::default(),
    )
    .unwrap();
    let mut judges = vec![("rust", plugins.join("judge_jaccard.wasm"))];
    for (lang, file) in [("python", "judge_py.wasm"), ("js", "judge_js.wasm")] {
        if examples.join(file).is_file() {
            judges.push((lang, examples.join(file)));
        }
    }
    println!("| figure | p50 | p99 |\n|---|---|---|");
    for (lang, path) in &judges {
        let slot = host
            .load(PluginKind::Judge, path, &Grants::default())
            .unwrap();
        for n in [1usize, 8] {
            let c = candidates(n);
            let (p50, p99) = time_calls(if *lang == "rust" { calls } else { calls / 10 }, || {
                std::hint::black_box(slot.judge(query, &c));
            });
            println!("| {lang} judge call, {n} candidate(s), warm instance | {p50:.2} µs | {p99:.2} µs |");
        }
    }
    for n in [1usize, 8] {
        let c = candidates(n);
        let (p50, p99) = time_calls(calls, || {
            std::hint::black_box(fallback::judge(query, &c));
        });
        println!(
            "| peer: same judge native in the host, {n} candidate(s) | {p50:.2} µs | {p99:.2} µs |"
        );
    }
    let cold_host = PluginHost::new(
        HostConfig {
            pool_instances: 64,
            warm_instances: 0,
            ..HostConfig::default()
        },
        Services::default(),
    )
    .unwrap();
    for (lang, path) in &judges {
        let cold = cold_host
            .load(PluginKind::Judge, path, &Grants::default())
            .unwrap();
        let c = candidates(1);
        let (p50, p99) = time_calls(if *lang == "python" { 200 } else { calls / 10 }, || {
            std::hint::black_box(cold.judge(query, &c));
        });
        println!("| {lang} judge call on a fresh instance (instantiate + call) | {p50:.2} µs | {p99:.2} µs |");
    }
    for (lang, path) in &judges {
        let repeats = if *lang == "rust" { 5 } else { 2 };
        let ((c50, _), (k50, k99)) = load_times(path, PluginKind::Judge, repeats);
        println!("| {lang} judge: cold compile (p50) / cached load | {c50:.1} ms / {k50:.2} ms | cached {k99:.2} ms |");
    }
}
