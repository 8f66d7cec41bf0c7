//! Embedder speed: single-sentence latency and batched throughput, per kernel and thread
//! count. `cargo bench -p engram-embed` prints a table (used for BENCHMARKS.md, section
//! `embed`); the peer in the same table comes from `scripts/bench_minilm_peer.py`, run
//! separately on the same sentences (`--sentences` prints them).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs one quick pass as a smoke
//! test.

use engram_embed::{default_model_dir, EmbedOptions, Embedder, Kernel};
use std::time::{Duration, Instant};

/// Memory-store-like sentences: short facts and questions, ~10-25 tokens each.
fn sentences(n: usize) -> Vec<String> {
    const TEMPLATES: [&str; 8] = [
        "My sister Anna's birthday is on May {i}, and she likes dark chocolate.",
        "Remind me to call the dentist about appointment number {i} next Tuesday.",
        "The project deadline moved to week {i}; the demo is on Friday afternoon.",
        "I prefer tea over coffee in the morning, usually around {i} minutes after waking up.",
        "What was the name of the restaurant we visited on trip {i} in Lisbon?",
        "The server crashed with error code {i} after the last deployment.",
        "We discussed switching the database to SQLite for the {i}th prototype.",
        "Bob recommended the book 'Thinking, Fast and Slow' during meeting {i}.",
    ];
    (0..n)
        .map(|i| TEMPLATES[i % TEMPLATES.len()].replace("{i}", &(i + 3).to_string()))
        .collect()
}

/// Process CPU time (all threads) so far; on a shared, oversubscribed machine this is the
/// steadier measure for one-thread runs.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median wall time and median CPU time of `runs` calls of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let (mut wall, mut cpu): (Vec<Duration>, Vec<Duration>) = (0..runs)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_time());
            f();
            (t.elapsed(), cpu_time() - c)
        })
        .unzip();
    wall.sort();
    cpu.sort();
    (wall[runs / 2], cpu[runs / 2])
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let dir = default_model_dir();
    if std::env::args().any(|a| a == "--sentences") {
        for s in sentences(256) {
            println!("{s}");
        }
        return;
    }
    let (single_runs, batch_n, batch_runs) = if full { (41, 256, 5) } else { (1, 8, 1) };
    let texts_owned = sentences(batch_n);
    let texts: Vec<&str> = texts_owned.iter().map(String::as_str).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let t = Instant::now();
    let default = Embedder::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    println!("load: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let tokens: usize = texts.iter().map(|t| default.token_ids(t).len()).sum();
    println!(
        "{} sentences, {tokens} tokens ({:.1} per sentence), {cores} cores",
        texts.len(),
        tokens as f64 / texts.len() as f64
    );
    println!(
        "{:<10} {:>7} {:>12} {:>12} {:>15} {:>14} {:>16}",
        "kernel",
        "threads",
        "single ms",
        "single cpu",
        "batch sent/s",
        "batch tok/s",
        "tok/cpu-second"
    );
    // A note-sized text of 256 tokens (the truncation limit), where attention weighs most.
    let long_text = texts_owned.join(" ");
    let mut long_rows = Vec::new();
    let mut configs = vec![(true, 1), (true, cores), (false, 1), (false, cores)];
    configs.dedup();
    // `--only simd:1` (kernel `simd` or `portable`, thread count) measures one configuration.
    let args: Vec<String> = std::env::args().collect();
    if let Some(only) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        let (kind, threads) = only.split_once(':').expect("--only KERNEL:THREADS");
        let threads: usize = threads.parse().expect("--only KERNEL:THREADS");
        configs = vec![(kind == "simd", threads)];
    }
    for (simd, threads) in configs {
        let e = Embedder::load_with(&dir, &EmbedOptions { threads, simd }).unwrap();
        if simd && e.kernel() == Kernel::Portable {
            continue;
        }
        let one = texts[0];
        e.embed(one); // warm up
        let single = median(single_runs, || {
            std::hint::black_box(e.embed(one));
        });
        let batch = median(batch_runs, || {
            std::hint::black_box(e.embed_batch(&texts));
        });
        let long = median(single_runs.min(11), || {
            std::hint::black_box(e.embed(&long_text));
        });
        long_rows.push((e.kernel(), threads, long));
        let secs = batch.0.as_secs_f64();
        println!(
            "{:<10} {:>7} {:>12.2} {:>12.2} {:>15.1} {:>14.0} {:>16.0}",
            format!("{:?}", e.kernel()),
            threads,
            single.0.as_secs_f64() * 1e3,
            single.1.as_secs_f64() * 1e3,
            texts.len() as f64 / secs,
            tokens as f64 / secs,
            tokens as f64 / batch.1.as_secs_f64()
        );
    }
    println!(
        "\none {}-token text (truncated at MAX_TOKENS):",
        engram_embed::MAX_TOKENS
    );
    for (kernel, threads, (wall, cpu)) in long_rows {
        println!(
            "{:<10} {:>7} {:>12.2} ms wall {:>12.2} ms cpu",
            format!("{kernel:?}"),
            threads,
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
    }
}
