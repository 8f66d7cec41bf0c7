//! `engram bench engine`: prefill and decode speed of the engine next to llama.cpp (through
//! `llama-cpp-python`), same model file, same thread count, same synthetic prompt, in one run.
//! The two are alternated repeat by repeat so both see the same machine load.

use anyhow::{bail, Context};
use engram_engine::sampler::argmax;
use engram_engine::{CpuOps, Model, Session, SessionOptions};
use std::sync::Arc;
use std::time::Instant;

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;
use crate::model_files::DEFAULT_CHAT_MODEL;

/// The synthetic prompt both engines get (token i = 100 + (i·7919) mod 10000).
fn prompt(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| 100 + (i * 7919) % 10000).collect()
}

fn ours(model: &Arc<Model>, n_prompt: usize, n_decode: usize) -> anyhow::Result<(f64, f64)> {
    let p = prompt(n_prompt);
    let mut s = Session::new(
        model,
        SessionOptions {
            n_ctx: n_prompt + n_decode + 8,
        },
    );
    let t = Instant::now();
    s.prefill(&p)?;
    let prefill = n_prompt as f64 / t.elapsed().as_secs_f64();
    let mut tok = 42;
    let t = Instant::now();
    for _ in 0..n_decode {
        tok = argmax(s.decode_step(tok)?);
    }
    Ok((prefill, n_decode as f64 / t.elapsed().as_secs_f64()))
}

fn peer(
    ctx: &BenchContext<'_>,
    model: &std::path::Path,
    n_prompt: usize,
    n_decode: usize,
) -> anyhow::Result<(f64, f64)> {
    let python = std::env::var_os("ENGRAM_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.places.base.join(".venv/bin/python"));
    let script = ctx.places.base.join("host/engine/bench/llama_cpp_speed.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(model)
        .args([ctx.threads, n_prompt, n_decode, 1].map(|v| v.to_string()))
        .output()
        .with_context(|| {
            format!(
                "running {} (set ENGRAM_PYTHON to a Python with llama-cpp-python)",
                python.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "llama.cpp peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing the peer's JSON")?;
    let first = |k: &str| {
        v[k][0]
            .as_f64()
            .with_context(|| format!("peer JSON lacks {k}"))
    };
    Ok((first("prefill_tok_s")?, first("decode_tok_s")?))
}

/// `--device cuda|auto`: our prefill/decode on the GPU. The llama.cpp peer here is its CPU
/// build, so it is not run next to the GPU (that would compare devices, not engines).
fn gpu_suite(ctx: &BenchContext<'_>) -> anyhow::Result<Option<Report>> {
    let options = crate::cmd_generate::cuda_options(ctx.places);
    let selected = engram_cuda::ops_for(ctx.device, ctx.threads, &options)
        .with_context(|| format!("--device {}", ctx.device))?;
    if !selected.on_gpu {
        eprintln!("device: {} — running the CPU suite", selected.description);
        return Ok(None);
    }
    let path = ctx.places.models.join(DEFAULT_CHAT_MODEL);
    let (n_prompt, n_decode, repeats) = if ctx.quick { (32, 16, 1) } else { (128, 64, 5) };
    let model = Arc::new(Model::load_with(&path, selected.ops)?);
    ours(&model, 8, 4)?; // compile/load kernels, upload the weights
    let (mut op, mut od) = (vec![], vec![]);
    for _ in 0..repeats {
        let (p, d) = ours(&model, n_prompt, n_decode)?;
        op.push(p);
        od.push(d);
    }
    let s = |v: &[f64]| Summary::of(v).context("no samples");
    let mut report = Report::new("engine", ctx.quick, ctx.machine);
    for (name, v) in [
        (format!("prefill ({n_prompt} tokens), GPU"), &op),
        (format!("decode ({n_decode} tokens), GPU"), &od),
    ] {
        report
            .figures
            .push(Figure::alone(&name, "tok/s", Better::Higher, s(v)?));
    }
    report.notes.push(format!(
        "device {}; model {DEFAULT_CHAT_MODEL}",
        selected.description
    ));
    report.notes.push("peer not run: the llama-cpp-python here is a CPU build (a CUDA build needs CMAKE_ARGS=-DGGML_CUDA=on on the GPU machine)".into());
    Ok(Some(report))
}

/// The Qwen model the suite also measures when `scripts/setup.sh --with-qwen` fetched it.
const QWEN_MODEL: &str = "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf";

/// Ours and llama.cpp's prefill/decode on one model file, alternated per repeat, as figures.
fn cpu_model(
    ctx: &BenchContext<'_>,
    report: &mut Report,
    file: &str,
    label: &str,
    targets: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let path = ctx.places.models.join(file);
    let (n_prompt, n_decode, repeats) = if ctx.quick { (32, 16, 1) } else { (128, 64, 5) };
    let model = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(ctx.threads)))?);
    ours(&model, 8, 4)?; // warm the page cache and the pool
    let (mut op, mut od, mut pp, mut pd) = (vec![], vec![], vec![], vec![]);
    for _ in 0..repeats {
        let (p, d) = ours(&model, n_prompt, n_decode)?;
        op.push(p);
        od.push(d);
        let (p, d) = peer(ctx, &path, n_prompt, n_decode)?;
        pp.push(p);
        pd.push(d);
    }
    let s = |v: &[f64]| Summary::of(v).context("no samples");
    let prefill = Figure::against(
        &format!("{label}: prefill ({n_prompt} tokens)"),
        "tok/s",
        Better::Higher,
        s(&op)?,
        "llama.cpp",
        s(&pp)?,
    );
    let decode = Figure::against(
        &format!("{label}: decode ({n_decode} tokens)"),
        "tok/s",
        Better::Higher,
        s(&od)?,
        "llama.cpp",
        s(&pd)?,
    );
    let (prefill, decode) = match targets {
        Some((p, d)) => (prefill.with_target(p), decode.with_target(d)),
        None => (prefill, decode),
    };
    report.figures.push(prefill);
    report.figures.push(decode);
    let bytes = model.bytes_per_token() as f64;
    let bound = ctx.machine.read_bandwidth_gb_s * 1e9 / bytes;
    report.figures.push(Figure::alone(
        &format!("{label}: decode bandwidth bound (bandwidth ÷ bytes per token)"),
        "tok/s",
        Better::Higher,
        Summary::of(&[bound]).context("bound")?,
    ));
    report.notes.push(format!(
        "model {file}: {:.1} MB of weights read per decoded token",
        bytes / 1e6
    ));
    Ok(())
}

/// Runs the suite.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    if ctx.device != engram_cuda::DeviceChoice::Cpu {
        if let Some(report) = gpu_suite(ctx)? {
            return Ok(report);
        }
    }
    let mut report = Report::new("engine", ctx.quick, ctx.machine);
    cpu_model(
        ctx,
        &mut report,
        DEFAULT_CHAT_MODEL,
        "SmolLM2-135M",
        Some(("≥ 0.8× llama.cpp", "≥ 1.0× llama.cpp")),
    )?;
    if ctx.places.models.join(QWEN_MODEL).is_file() {
        cpu_model(ctx, &mut report, QWEN_MODEL, "Qwen2.5-Coder-0.5B", None)?;
    } else {
        report.notes.push(format!(
            "{QWEN_MODEL} not measured: not in {} (fetch it with `scripts/setup.sh --with-qwen`)",
            ctx.places.models.display()
        ));
    }
    report.notes.push(format!(
        "{} threads; kernels {:?}",
        ctx.threads,
        engram_engine::kernels::Kernels::detect().isa
    ));
    report.notes.push("peer: llama.cpp through llama-cpp-python 0.3.36 (host/engine/bench/llama_cpp_speed.py), alternated with ours per repeat".into());
    Ok(report)
}
