//! The machine a benchmark runs on: CPU model, cores, SIMD features and measured memory
//! read bandwidth (the physical bound on decode speed: model bytes per token ÷ bandwidth).

use serde::Serialize;
use std::time::Instant;

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;

/// A description of the machine, measured once per `engram bench` invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo` (or "unknown").
    pub cpu_model: String,
    /// Logical cores available to this process.
    pub logical_cores: usize,
    /// SIMD features the engine can use on this CPU.
    pub simd: Vec<String>,
    /// Best-of-several multi-threaded read bandwidth over a buffer far larger than the caches.
    pub read_bandwidth_gb_s: f64,
    /// The individual bandwidth samples, GB/s.
    pub bandwidth_samples_gb_s: Vec<f64>,
}

/// Size of the buffer streamed to measure bandwidth (well beyond any last-level cache).
const BANDWIDTH_BYTES: usize = 256 << 20;

impl Machine {
    /// Describe this machine and measure its memory read bandwidth (takes about a second).
    pub fn measure() -> Machine {
        let logical_cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let samples = measure_read_bandwidth(logical_cores, 5);
        Machine {
            cpu_model: cpu_model(),
            logical_cores,
            simd: simd_features(),
            read_bandwidth_gb_s: samples.iter().copied().fold(0.0, f64::max),
            bandwidth_samples_gb_s: samples,
        }
    }
}

/// `engram bench machine`: report the machine description as figures.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    let mut report = Report::new("machine", ctx.quick, ctx.machine);
    let samples = &ctx.machine.bandwidth_samples_gb_s;
    let summary = Summary::of(samples)
        .ok_or_else(|| anyhow::anyhow!("bandwidth measurement produced no samples"))?;
    report.figures.push(Figure::alone(
        "memory read bandwidth",
        "GB/s",
        Better::Higher,
        summary,
    ));
    report.notes.push(format!(
        "bandwidth: {} threads summing a {} MiB buffer; the best sample is the machine's bound",
        ctx.machine.logical_cores,
        BANDWIDTH_BYTES >> 20
    ));
    Ok(report)
}

fn measure_read_bandwidth(threads: usize, repeats: usize) -> Vec<f64> {
    let words = BANDWIDTH_BYTES / 8;
    // Fill with non-zero data so pages are really backed.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads.max(1));
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let total: u64 = std::thread::scope(|scope| {
                let handles: Vec<_> = buffer
                    .chunks(chunk)
                    .map(|part| scope.spawn(move || sum_words(part)))
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap_or(0))
                    .fold(0u64, u64::wrapping_add)
            });
            std::hint::black_box(total);
            BANDWIDTH_BYTES as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect()
}

/// Sum with four independent accumulators so the loop is bound by loads, not by the add chain.
fn sum_words(words: &[u64]) -> u64 {
    let mut acc = [0u64; 4];
    let mut quads = words.chunks_exact(4);
    for quad in &mut quads {
        for (slot, word) in acc.iter_mut().zip(quad) {
            *slot = slot.wrapping_add(*word);
        }
    }
    let tail = quads
        .remainder()
        .iter()
        .fold(0u64, |sum, word| sum.wrapping_add(*word));
    acc.iter().fold(tail, |sum, part| sum.wrapping_add(*part))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn simd_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let checks = [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
        ];
        found.extend(
            checks
                .iter()
                .filter(|(_, present)| *present)
                .map(|(name, _)| name.to_string()),
        );
    }
    #[cfg(target_arch = "aarch64")]
    found.push("neon".to_string());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_words_matches_a_plain_sum() {
        let words: Vec<u64> = (0..1003).collect();
        assert_eq!(sum_words(&words), words.iter().sum::<u64>());
    }
}
