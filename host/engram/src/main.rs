//! The `engram` binary: wires the host crates together behind one command line.

mod bench;
mod info;
mod locate;
mod model_files;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Engram: a local LLM host that owns its memory.
#[derive(Parser, Debug)]
#[command(name = "engram", version, about, long_about = None)]
struct Cli {
    /// Folder holding the model files (filled by `scripts/setup.sh`).
    #[arg(long, env = "ENGRAM_MODELS", global = true)]
    models: Option<PathBuf>,

    /// Folder where the memory store, sessions and caches live.
    #[arg(long, env = "ENGRAM_DATA", global = true)]
    data: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print which models, plugins and store are found, and where.
    Info,
    /// Run a benchmark suite side by side with its peer and report ratios.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENGRAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let places = locate::Places::resolve(cli.models, cli.data)?;
    match cli.command {
        Command::Info => info::run(&places),
        Command::Bench(args) => bench::run(&places, &args),
    }
}
