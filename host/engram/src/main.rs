//! The `engram` binary: wires the host crates together behind one command line.

mod bench;
mod cmd_generate;
mod cmd_memory;
mod cmd_serve;
mod info;
mod locate;
mod model_files;
mod plugin_cmd;

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

    /// Folder of plugin components the server loads (`judge_jaccard.wasm`, `tool_*.wasm`, …;
    /// default: the default plugins' build folder, `plugins/target/wasm32-wasip2/release`).
    #[arg(long, env = "ENGRAM_PLUGINS", global = true)]
    plugins: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print which models, plugins and store are found, and where.
    Info,
    /// Serve chat over HTTP: OpenAI-compatible and native endpoints, web console.
    Serve(cmd_serve::ServeArgs),
    /// Run a benchmark suite side by side with its peer and report ratios.
    Bench(bench::BenchArgs),
    /// The memory store: remember, get, history, forget, search, verify, seal, export, import.
    Memory(cmd_memory::MemoryArgs),
    /// Generate a completion for one prompt, streaming tokens and printing tokens/s.
    Generate(cmd_generate::GenerateArgs),
    /// Chat with the model in the terminal (keeps the KV cache between turns), or answer one
    /// `--prompt`.
    Chat(cmd_generate::ChatArgs),
    /// Compare the engine with llama.cpp reference outputs; exits non-zero on failure.
    CheckReference(cmd_generate::CheckReferenceArgs),
    /// List, build, inspect and load plugin components.
    Plugin(plugin_cmd::PluginArgs),
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
    let places = locate::Places::resolve(cli.models, cli.data, cli.plugins)?;
    match cli.command {
        Command::Info => info::run(&places),
        Command::Serve(args) => cmd_serve::run(&places, args),
        Command::Bench(args) => bench::run(&places, &args),
        Command::Memory(args) => cmd_memory::run(&places, &args),
        Command::Generate(args) => cmd_generate::run_generate(&places, &args),
        Command::Chat(args) => cmd_generate::run_chat(&places, &args),
        Command::CheckReference(args) => cmd_generate::run_check_reference(&places, &args),
        Command::Plugin(args) => plugin_cmd::run(&places, &args),
    }
}
