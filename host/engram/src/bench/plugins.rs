//! `engram bench plugins`: the cost of running memory behaviours as wasm components.
//!
//! Figures: a judge call through a warm instance (p50/p99) beside the same
//! judge algorithm compiled natively into the host (the built-in fallback);
//! a call on a fresh store + instance (pooling allocator); and loading a
//! component cold (compile) versus from the on-disk cache.

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;
use anyhow::Context;
use engram_plugins::{
    fallback, Candidate, Features, Grants, HostConfig, LoadPath, PluginHost, PluginKind, Services,
};
use std::path::Path;
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

/// Per-call latencies in µs of `f`, after a warm-up.
fn time_calls(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..n / 10 + 1 {
        f();
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn summary(samples: &[f64]) -> anyhow::Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// The judges measured: the Rust default plugin, plus the Python and JavaScript example judges
/// (`examples/`) when their components have been built (`plugins/target/examples/`, written by
/// the `language_judges` test or the examples' build scripts).
fn judges(ctx: &BenchContext<'_>) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut judges = vec![("rust", ctx.places.plugins.join("judge_jaccard.wasm"))];
    let examples = ctx.places.example_components();
    for (lang, file) in [("python", "judge_py.wasm"), ("js", "judge_js.wasm")] {
        if examples.join(file).is_file() {
            judges.push((lang, examples.join(file)));
        }
    }
    judges
}

/// Run the suite.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    let mut report = Report::new("plugins", ctx.quick, ctx.machine);
    let judges = judges(ctx);
    anyhow::ensure!(
        judges[0].1.is_file(),
        "{} is missing: run `engram plugin build` (or scripts/setup.sh) first",
        judges[0].1.display()
    );
    let calls = if ctx.quick { 2_000 } else { 100_000 };
    let host = PluginHost::new(
        HostConfig {
            pool_instances: 64,
            ..HostConfig::default()
        },
        Services::default(),
    )?;
    let cold_host = PluginHost::new(
        HostConfig {
            pool_instances: 64,
            warm_instances: 0,
            ..HostConfig::default()
        },
        Services::default(),
    )?;
    let query = "what is my server's ip?";

    for (lang, path) in &judges {
        // Interpreted guests are 10–100× slower per call: fewer calls keep the run short.
        let lang_calls = if *lang == "rust" { calls } else { calls / 10 };
        let slot = host.load(PluginKind::Judge, path, &Grants::default())?;
        for n in [1usize, 8] {
            let cands = candidates(n);
            let wasm = time_calls(lang_calls, || {
                std::hint::black_box(slot.judge(query, &cands));
            });
            let native = time_calls(lang_calls, || {
                std::hint::black_box(fallback::judge(query, &cands));
            });
            let mut fig = Figure::against(
                &format!("{lang} judge call, {n} candidate(s), warm instance"),
                "µs",
                Better::Lower,
                summary(&wasm)?,
                "same judge native in the host",
                summary(&native)?,
            );
            if n == 1 && *lang == "rust" {
                fig = fig.with_target("p50 ≤ 5 µs");
            }
            report.figures.push(fig);
            let s = summary(&wasm)?;
            report.notes.push(format!(
                "{lang} judge call, {n} candidate(s): p50 {:.2} µs, p99 {:.2} µs",
                s.median, s.p99
            ));
        }

        // Fresh store + instantiate (pooling) + call: no warm instances kept.
        let cold = cold_host.load(PluginKind::Judge, path, &Grants::default())?;
        let cands = candidates(1);
        let fresh_calls = if *lang == "python" {
            200
        } else {
            lang_calls / 10
        };
        let fresh = time_calls(fresh_calls, || {
            std::hint::black_box(cold.judge(query, &cands));
        });
        let fs = summary(&fresh)?;
        report.figures.push(Figure::alone(
            &format!("{lang} judge call on a fresh instance (instantiate + call)"),
            "µs",
            Better::Lower,
            fs.clone(),
        ));
        report.notes.push(format!(
            "{lang} fresh instance + call: p50 {:.2} µs, p99 {:.2} µs",
            fs.median, fs.p99
        ));
    }
    if judges.len() < 3 {
        report.notes.push(
            "the Python/JS example judges were not measured: build them first \
             (`cargo test -p engram-plugins --test language_judges` writes plugins/target/examples/)"
                .to_string(),
        );
    }

    // Cold compile vs cached load, for every default plugin present and the example judges.
    let repeats = if ctx.quick { 2 } else { 5 };
    let mut loads: Vec<(String, std::path::PathBuf)> = [
        "judge_jaccard",
        "recall_concert",
        "capture_facts",
        "tool_calc",
        "agency_curator",
    ]
    .iter()
    .map(|name| {
        (
            name.to_string(),
            ctx.places.plugins.join(format!("{name}.wasm")),
        )
    })
    .collect();
    loads.extend(
        judges
            .iter()
            .skip(1)
            .map(|(lang, path)| (format!("{lang} judge"), path.clone())),
    );
    for (name, path) in loads {
        if !path.is_file() {
            continue;
        }
        // Compiling a 12–18 MB Python/JS component takes seconds: two loads are enough.
        let repeats = if name.ends_with(" judge") { 2 } else { repeats };
        let (compile, cached) = load_times(&path, repeats)?;
        report.figures.push(
            Figure::against(
                &format!("{name}: cached load (vs cold compile)"),
                "ms",
                Better::Lower,
                summary(&cached)?,
                "cold compile",
                summary(&compile)?,
            )
            .with_target("cached ≤ 100 ms"),
        );
    }
    report.notes.push(
        "load = read + hash + compile or deserialize + version check + link + pre-instantiate"
            .to_string(),
    );
    Ok(report)
}

fn load_times(path: &Path, repeats: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let kind = {
        let probe = PluginHost::new(
            HostConfig {
                pooling: false,
                ..HostConfig::default()
            },
            Services::default(),
        )?;
        probe.inspect(path)?.detected?.0
    };
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    for r in 0..repeats {
        let dir =
            std::env::temp_dir().join(format!("engram-bench-cache-{}-{r}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = || HostConfig {
            cache_dir: Some(dir.clone()),
            pool_instances: 8,
            ..HostConfig::default()
        };
        let host = PluginHost::new(cfg(), Services::default())?;
        let t = Instant::now();
        let l = host.prepare(kind, path, &Grants::default())?;
        compile.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(l.load_path == LoadPath::Compiled, "expected a cold compile");
        let host = PluginHost::new(cfg(), Services::default())?;
        let t = Instant::now();
        let l = host.prepare(kind, path, &Grants::default())?;
        cached.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(l.load_path == LoadPath::Cached, "expected a cached load");
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((compile, cached))
}
