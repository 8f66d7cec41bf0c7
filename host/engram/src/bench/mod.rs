//! `engram bench <suite>`: performance measured side by side with a peer, reported as ratios.
//!
//! Every suite produces a [`report::Report`]: a table on stdout and a JSON file (machine
//! description, commit, and each figure's median and spread over repeated runs). Suites live in
//! one file each; `--quick` runs a smoke-sized version (CI runs it so no suite can rot).

pub mod engine;
pub mod exact;
pub mod horizon;
pub mod locomo;
pub mod machine;
pub mod memory;
pub mod plugins;
pub mod report;
pub mod serve_child;
pub mod sessions;

use clap::{Args, ValueEnum};
use std::path::PathBuf;

use crate::locate::Places;

/// Arguments of `engram bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which suite to run (`all` runs every suite in turn).
    #[arg(value_enum)]
    pub suite: Suite,
    /// Smoke-sized run: fewer repeats and smaller inputs (used by CI).
    #[arg(long)]
    pub quick: bool,
    /// Where to write the JSON report (default: `artifacts/bench/<suite>.json`); `--json`
    /// alone prints JSON on stdout instead (horizon: one object per N).
    #[arg(long, num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Sizes a suite that takes one runs at (horizon: facts planted, e.g. `--n 32`).
    #[arg(long)]
    pub n: Vec<usize>,
    /// Worker threads for suites that run the engine (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Data file of a suite that reads one (locomo: default `../shared/data/locomo10.json`
    /// beside the checkout).
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// The system prompt the horizon suite's client sends every turn (default: a 17-token
    /// instruction; the per-turn cost no-replay mode cannot shed grows with it).
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Where the engine suite computes: cpu, cuda (an error without a GPU) or auto.
    #[arg(long, default_value = "cpu")]
    pub device: engram_cuda::DeviceChoice,
}

/// The benchmark suites.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// Run every suite in turn.
    All,
    /// The machine itself: CPU, cores and measured memory bandwidth (the bound for decode).
    Machine,
    /// The inference engine: prefill and decode tokens/s next to llama.cpp (same file, threads).
    Engine,
    /// Memory store: durable write throughput, ANN and recall latency at 10k/100k/1M cells.
    Memory,
    /// LoCoMo-10: recall@1/5/10 of the questions' evidence turns, Engram vs bare MiniLM cosine.
    Locomo,
    /// Plugin runtime: judge call overhead, instantiation, cold compile vs cached load.
    Plugins,
    /// Chat sessions over HTTP: TTFT per turn with persistent KV vs stateless replay, restart-resume.
    Sessions,
    /// Exact mode vs the float path: perplexity, greedy agreement, decode speed, digests, NTT.
    Exact,
    /// Memory horizon in no-replay mode: recall of N planted facts, stale/leak rates, token
    /// savings vs replaying the transcript; chat latency with the heartbeat on vs off.
    Horizon,
}

impl Suite {
    /// Every concrete suite, in the order `all` runs them.
    fn each() -> Vec<Suite> {
        Suite::value_variants()
            .iter()
            .copied()
            .filter(|suite| *suite != Suite::All)
            .collect()
    }

    fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default()
    }
}

/// What every suite receives.
pub struct BenchContext<'a> {
    /// Where models, data and plugins are.
    pub places: &'a Places,
    /// Smoke-sized run.
    pub quick: bool,
    /// Engine threads.
    pub threads: usize,
    /// Where the engine suite computes (`--device`).
    pub device: engram_cuda::DeviceChoice,
    /// The machine the run happens on (measured once per invocation).
    pub machine: &'a machine::Machine,
    /// `--data-file`, for suites that read a data set.
    pub data_file: Option<PathBuf>,
    /// `--n`: sizes for suites that take them (empty = the suite's defaults).
    pub n: Vec<usize>,
    /// `--json` without a path: print JSON on stdout.
    pub json_stdout: bool,
    /// `--system-prompt`, for the horizon suite's client.
    pub system_prompt: Option<String>,
}

/// Run `engram bench`.
pub fn run(places: &Places, args: &BenchArgs) -> anyhow::Result<()> {
    let machine = machine::Machine::measure();
    let threads = args.threads.unwrap_or(machine.logical_cores);
    let ctx = BenchContext {
        places,
        quick: args.quick,
        threads,
        device: args.device,
        machine: &machine,
        data_file: args.data_file.clone(),
        n: args.n.clone(),
        system_prompt: args.system_prompt.clone(),
        json_stdout: args.json.as_deref() == Some(std::path::Path::new("-")),
    };
    let suites = match args.suite {
        Suite::All => Suite::each(),
        one => vec![one],
    };
    let mut failed = Vec::new();
    let started = std::time::Instant::now();
    for suite in suites {
        let suite_started = std::time::Instant::now();
        let result = match suite {
            Suite::All => unreachable!("`all` is expanded above"),
            Suite::Machine => machine::suite(&ctx),
            Suite::Engine => engine::suite(&ctx),
            Suite::Memory => memory::suite(&ctx),
            Suite::Locomo => locomo::suite(&ctx),
            Suite::Plugins => plugins::suite(&ctx),
            Suite::Sessions => sessions::suite(&ctx),
            Suite::Exact => exact::suite(&ctx),
            Suite::Horizon => horizon::suite(&ctx),
        };
        match result {
            Ok(report) if ctx.json_stdout => {
                // Horizon printed its objects as it went; other suites print their report.
                if suite != Suite::Horizon {
                    println!("{}", serde_json::to_string(&report)?);
                }
            }
            Ok(report) => {
                report.print();
                let path = match (&args.json, args.suite) {
                    (Some(path), Suite::All) => path.join(format!("{}.json", suite.name())),
                    (Some(path), _) => path.clone(),
                    (None, _) => places
                        .artifacts()
                        .join("bench")
                        .join(format!("{}.json", suite.name())),
                };
                report.write_json(&path)?;
                println!("wrote {}\n", path.display());
            }
            Err(err) => {
                eprintln!("bench {}: {err:#}", suite.name());
                failed.push(suite.name());
            }
        }
        eprintln!(
            "bench {}: {:.1} s",
            suite.name(),
            suite_started.elapsed().as_secs_f64()
        );
    }
    if args.suite == Suite::All {
        eprintln!(
            "bench all{}: {:.1} s",
            if args.quick { " --quick" } else { "" },
            started.elapsed().as_secs_f64()
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("bench suites failed: {}", failed.join(", "));
    }
    Ok(())
}
