//! `engram generate`, `engram chat` and `engram check-reference`: the engine on the command
//! line.

use crate::locate::Places;
use crate::model_files::DEFAULT_CHAT_MODEL;
use anyhow::{bail, Context};
use clap::Args;
use engram_engine::{
    generate, reference, ChatMessage, CpuOps, ExactOps, GenerateOptions, Model, SamplerConfig,
    Session, SessionOptions,
};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Which model to load and how.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file (default: the default chat model in the models folder).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Kernel threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context length of the session (default: the model's, capped at 4096).
    #[arg(long, default_value_t = 0)]
    pub ctx: usize,
    /// Where to compute: cpu, cuda (an error without a GPU) or auto (CUDA when a GPU works,
    /// else the CPU).
    #[arg(long, default_value = "cpu", env = "ENGRAM_DEVICE")]
    pub device: engram_cuda::DeviceChoice,
    /// Exact mode: every operator of the forward pass runs in integer arithmetic, so the
    /// logits are the same bits for any thread count, with or without SIMD, on any machine.
    #[arg(long)]
    pub exact: bool,
}

/// Sampling settings.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop strings (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    fn options(&self) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            sampler: SamplerConfig {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: 64,
                seed: self.seed,
            },
            ..GenerateOptions::default()
        }
    }
}

/// Arguments of `engram generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Feed the prompt as raw text instead of a user message in the chat template.
    #[arg(long)]
    raw: bool,
    /// Print a BLAKE2b-256 digest of the logits stream (prompt and every decode step) at the
    /// end, so two machines can compare runs (with `--exact` they must match bit for bit).
    #[arg(long)]
    digest: bool,
}

/// Arguments of `engram chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// One-shot: answer this message and exit instead of reading turns from the terminal.
    #[arg(long)]
    prompt: Option<String>,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Print a BLAKE2b-256 digest of the logits stream after every answer.
    #[arg(long)]
    digest: bool,
}

/// Arguments of `engram check-reference`.
#[derive(Args, Debug)]
pub struct CheckReferenceArgs {
    /// Reference JSON written by `tests/fixtures/make_reference.py`.
    file: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

pub(crate) fn load(places: &Places, args: &ModelArgs) -> anyhow::Result<Arc<Model>> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| places.models.join(DEFAULT_CHAT_MODEL));
    let threads = args.threads.unwrap_or(0);
    let t = std::time::Instant::now();
    let model = if args.exact {
        match exact_gpu_ops(places, args, threads)? {
            Some(ops) => engram_cuda::CudaExactOps::load_model(&path, ops),
            None => ExactOps::load_model(&path, threads),
        }
    } else {
        Model::load_with(&path, device_ops(places, args, threads)?)
    }
    .with_context(|| format!("loading {}", path.display()))?;
    tracing::info!(path = %path.display(), exact = args.exact, ms = t.elapsed().as_millis() as u64, "model loaded");
    Ok(Arc::new(model))
}

/// Where the CUDA backend caches compiled PTX and where it looks for NVRTC's `.venv`.
pub(crate) fn cuda_options(places: &Places) -> engram_cuda::CudaOptions {
    engram_cuda::CudaOptions {
        ptx_cache: Some(places.data.join("cache").join("ptx")),
        nvrtc_search_from: Some(places.base.clone()),
    }
}

/// The float operators for `--device` (the CPU ones for the default `cpu`).
fn device_ops(
    places: &Places,
    args: &ModelArgs,
    threads: usize,
) -> anyhow::Result<Arc<dyn engram_engine::Ops>> {
    if args.device == engram_cuda::DeviceChoice::Cpu {
        return Ok(Arc::new(CpuOps::new(threads)));
    }
    let selected = engram_cuda::ops_for(args.device, threads, &cuda_options(places))
        .with_context(|| format!("--device {}", args.device))?;
    eprintln!("device: {}", selected.description);
    Ok(selected.ops)
}

/// `--exact` with `--device cuda|auto`: the exact operators with their islands on the GPU
/// (`None`: the CPU's exact operators).
fn exact_gpu_ops(
    places: &Places,
    args: &ModelArgs,
    threads: usize,
) -> anyhow::Result<Option<Arc<engram_cuda::CudaExactOps>>> {
    use engram_cuda::{CudaExactOps, DeviceChoice};
    let made = match args.device {
        DeviceChoice::Cpu => return Ok(None),
        DeviceChoice::Cuda => CudaExactOps::new(threads, &cuda_options(places))
            .with_context(|| format!("--exact --device {}", args.device))?,
        DeviceChoice::Auto => match CudaExactOps::new(threads, &cuda_options(places)) {
            Ok(ops) => ops,
            Err(e) => {
                eprintln!("device: cpu (exact); auto: {e}");
                return Ok(None);
            }
        },
    };
    eprintln!("device: {made:?} (exact islands on the GPU, quantized products on the CPU)");
    Ok(Some(Arc::new(made)))
}

fn stats(g: &engram_engine::Generation) {
    let pf = g.prompt_tokens as f64 / g.prefill_time.as_secs_f64().max(1e-9);
    let dc = g.tokens.len() as f64 / g.decode_time.as_secs_f64().max(1e-9);
    eprintln!(
        "\n[{} prompt tokens at {pf:.1} tok/s, {} generated at {dc:.1} tok/s, stop: {:?}]",
        g.prompt_tokens,
        g.tokens.len(),
        g.stop
    );
}

/// Prints the session's logits digest (when `--digest` turned it on).
fn print_digest(session: &Session, exact: bool) {
    if let Some(d) = session.digest() {
        println!(
            "logits digest (blake2b-256, {} logits blocks, {}): {}",
            d.rows(),
            if exact { "exact" } else { "float" },
            d.hex()
        );
    }
}

fn stream_out(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_ok()
}

/// `engram generate`.
pub fn run_generate(places: &Places, args: &GenerateArgs) -> anyhow::Result<()> {
    let model = load(places, &args.model)?;
    let text = if args.raw {
        args.prompt.clone()
    } else {
        let t = model
            .chat_template()
            .context("the model has no chat template; use --raw")?;
        t.render(&[ChatMessage::new("user", &args.prompt)], true)?
    };
    let mut ids = Vec::new();
    if args.raw && model.tokenizer().add_bos() {
        ids.extend(model.tokenizer().bos());
    }
    ids.extend(model.tokenizer().encode(&text, !args.raw));
    let mut session = Session::new(
        &model,
        SessionOptions {
            n_ctx: args.model.ctx,
        },
    );
    if args.digest {
        session.enable_digest();
    }
    let g = generate(&mut session, &ids, &args.sampling.options(), stream_out)?;
    println!();
    print_digest(&session, args.model.exact);
    stats(&g);
    Ok(())
}

/// `engram chat`: an interactive chat that keeps the session's KV cache between turns (each
/// turn prefills only the tokens that are new), or a one-shot answer with `--prompt`.
pub fn run_chat(places: &Places, args: &ChatArgs) -> anyhow::Result<()> {
    let model = load(places, &args.model)?;
    let template = model
        .chat_template()
        .context("the model has no chat template")?;
    let mut session = Session::new(
        &model,
        SessionOptions {
            n_ctx: args.model.ctx,
        },
    );
    let mut messages: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s))
        .collect();
    let opts = args.sampling.options();
    let interactive = args.prompt.is_none();
    if interactive {
        eprintln!(
            "engram chat — {} ({} threads). Type a message; /reset clears, /quit or Ctrl-D leaves.",
            model.gguf().path().display(),
            model.ops().n_threads()
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let user = match &args.prompt {
            Some(p) => p.clone(),
            None => {
                eprint!("\n> ");
                std::io::stderr().flush().ok();
                match lines.next() {
                    Some(line) => line?,
                    None => break,
                }
            }
        };
        match user.trim() {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                session = Session::new(
                    &model,
                    SessionOptions {
                        n_ctx: args.model.ctx,
                    },
                );
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::new("user", user));
        let rendered = template.render(&messages, true)?;
        let ids = model.tokenizer().encode(&rendered, true);
        // Reuse the cached prefix; only the new part of the conversation is prefilled.
        let common = session
            .tokens()
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count();
        let reuse = common.min(ids.len().saturating_sub(1));
        session.truncate(reuse);
        if args.digest {
            session.enable_digest();
        }
        let g = generate(&mut session, &ids[reuse..], &opts, stream_out);
        let g = match g {
            Ok(g) => g,
            Err(engram_engine::EngineError::ContextOverflow { .. }) if interactive => {
                eprintln!("\n(context full: the conversation was cleared; type /reset to start over explicitly)");
                messages.retain(|m| m.role == "system");
                session = Session::new(
                    &model,
                    SessionOptions {
                        n_ctx: args.model.ctx,
                    },
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        println!();
        print_digest(&session, args.model.exact);
        if interactive {
            eprintln!(
                "[reused {reuse} cached tokens, prefilled {}; {} generated at {:.1} tok/s]",
                ids.len() - reuse,
                g.tokens.len(),
                g.tokens.len() as f64 / g.decode_time.as_secs_f64().max(1e-9)
            );
        } else {
            stats(&g);
        }
        messages.push(ChatMessage::new("assistant", g.text));
        if !interactive {
            break;
        }
    }
    Ok(())
}

/// `engram check-reference`: the correctness figures against llama.cpp outputs; fails when any
/// gate line fails.
pub fn run_check_reference(places: &Places, args: &CheckReferenceArgs) -> anyhow::Result<()> {
    let model = load(places, &args.model)?;
    let json = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let t = std::time::Instant::now();
    let report = reference::check_reference(&model, &json)?;
    println!(
        "reference {} ({}), model {}",
        args.file.display(),
        report.reference_model,
        model.gguf().path().display()
    );
    for (line, ok) in report.checks() {
        println!("{} {line}", if ok { "PASS" } else { "FAIL" });
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    if !report.passed() {
        bail!(
            "the engine does not match the reference {}",
            args.file.display()
        );
    }
    Ok(())
}
