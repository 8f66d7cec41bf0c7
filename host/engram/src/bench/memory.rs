//! `engram bench memory`: the memory store at 10k, 100k and 1M cells.
//!
//! Figures per bank size: durable write throughput (batches of 1,000, one flush each)
//! beside one-at-a-time durable writes; ANN search latency beside an exhaustive scan of
//! the same vectors; end-to-end `recall` latency (candidates, features, concert ranking)
//! with the query already embedded; ANN recall@10 against the exhaustive scan; and
//! recall@5 of the 1,000 real bank facts hidden among the bank's cells. Query embedding
//! (all-MiniLM-L6-v2) is timed separately.
//!
//! How the bank is formed (generating a million real MiniLM embeddings takes hours on
//! this machine): the first 1,000 cells are the real fact bank of `engram_memory::bank`,
//! embedded with MiniLM; every further cell gets a *derived* vector, the normalised sum
//! of one real fact vector, 0.35 × another and a small random vector (norm ≈ 0.3), with
//! a text and κ of its own. The derived cells thus sit among the real ones as near
//! neighbours (hard distractors), and the queries are the bank's real paraphrased
//! questions, embedded with MiniLM.

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;
use anyhow::Context;
use engram_memory::bank::bank;
use engram_memory::{Fact, MemoryConfig, MemoryStore, TextEmbedder};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn derived(pool: &[Vec<f32>], i: usize, rng: &mut Rng) -> Vec<f32> {
    let a = &pool[(rng.next() as usize) % pool.len()];
    let b = &pool[(i * 7919 + 13) % pool.len()];
    let noise_scale = 0.3 / (a.len() as f32 * 0.333).sqrt();
    let mut v: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x + 0.35 * y + noise_scale * rng.unit())
        .collect();
    normalise(&mut v);
    v
}

fn summary(samples: &[f64]) -> anyhow::Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// Run the suite.
pub fn suite(ctx: &BenchContext) -> anyhow::Result<Report> {
    let mut report = Report::new("memory", ctx.quick, ctx.machine);
    let model_dir = ctx.places.models.join(engram_embed::MODEL_DIR_NAME);
    let embedder = engram_embed::Embedder::load(&model_dir).with_context(|| {
        format!(
            "loading all-MiniLM-L6-v2 from {} (run scripts/setup.sh)",
            model_dir.display()
        )
    })?;
    let facts = bank(1000);
    let t = Instant::now();
    let texts: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
    let pool = TextEmbedder::embed_batch(&embedder, &texts);
    let pool_secs = t.elapsed().as_secs_f64();
    let n_queries = if ctx.quick { 50 } else { 500 };
    let mut qtimes = Vec::new();
    let mut qvecs = Vec::new();
    for f in facts.iter().take(n_queries) {
        let t = Instant::now();
        qvecs.push(engram_embed::Embedder::embed(&embedder, &f.query));
        qtimes.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let qs = summary(&qtimes)?;
    report.figures.push(Figure::alone(
        "query embedding (MiniLM, one query)",
        "ms",
        Better::Lower,
        qs.clone(),
    ));
    report.notes.push(format!(
        "bank facts embedded in a batch: {:.0} texts/s; one query: p50 {:.2} ms, p99 {:.2} ms",
        facts.len() as f64 / pool_secs,
        qs.median,
        qs.p99
    ));

    let sizes: &[usize] = if ctx.quick {
        &[2_000, 10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        bank_figures(ctx, &mut report, n, &facts, &pool, &qvecs)?;
    }
    report.notes.push(
        "bank: 1,000 real facts (MiniLM) + derived vectors (real fact + 0.35 × another + noise, normalised); \
         queries: the facts' paraphrased questions (MiniLM); recall excludes query embedding"
            .to_string(),
    );
    Ok(report)
}

fn bank_figures(
    ctx: &BenchContext,
    report: &mut Report,
    n: usize,
    facts: &[engram_memory::bank::BankFact],
    pool: &[Vec<f32>],
    qvecs: &[Vec<f32>],
) -> anyhow::Result<()> {
    let label = if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else {
        format!("{}k", n / 1000)
    };
    let dir = tempfile::tempdir_in(ctx.places.artifacts()).or_else(|_| tempfile::tempdir())?;
    let store = MemoryStore::open(dir.path(), MemoryConfig::durable())?;
    // Real facts first (their ids are 0..1000).
    let real: Vec<Fact> = facts
        .iter()
        .zip(pool)
        .map(|(f, v)| {
            let mut fact = Fact::new(&f.subject, &f.facet, &f.value).with_text(&f.text);
            fact.embedding = Some(v.clone());
            fact
        })
        .collect();
    let real_ids: Vec<u64> = store
        .remember_batch(real)?
        .into_iter()
        .map(|r| r.id())
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    const BATCH: usize = 1000;
    let mut batch_rates = Vec::new();
    let mut i = facts.len();
    let total_start = Instant::now();
    while i < n {
        let end = (i + BATCH).min(n);
        let batch: Vec<Fact> = (i..end)
            .map(|j| {
                let mut f = Fact::new(
                    format!("entity {}", j / 8),
                    format!("attribute {}", j % 8),
                    format!("value-{j}"),
                )
                .with_text(format!(
                    "entity {} attribute {} is value-{j}",
                    j / 8,
                    j % 8
                ));
                f.embedding = Some(derived(pool, j, &mut rng));
                f
            })
            .collect();
        let t = Instant::now();
        store.remember_batch(batch)?;
        batch_rates.push((end - i) as f64 / t.elapsed().as_secs_f64());
        i = end;
    }
    let write_secs = total_start.elapsed().as_secs_f64();
    // Peer: one durable write per call.
    let singles = if ctx.quick { 100 } else { 500 };
    let mut single_rates = Vec::new();
    for j in 0..singles {
        let mut f = Fact::new(format!("single {j}"), "attribute", format!("v{j}"));
        f.embedding = Some(derived(pool, j, &mut rng));
        let t = Instant::now();
        store.remember(f)?;
        single_rates.push(1.0 / t.elapsed().as_secs_f64());
    }
    report.figures.push(
        Figure::against(
            &format!("{label} cells: durable writes, batches of {BATCH}"),
            "writes/s",
            Better::Higher,
            summary(&batch_rates)?,
            "one durable write per call",
            summary(&single_rates)?,
        )
        .with_target("≥ 20,000 writes/s batched"),
    );
    let t = Instant::now();
    store.maintain_index();
    let build_secs = t.elapsed().as_secs_f64();

    // ANN vs exhaustive scan, and ANN quality.
    let mut ann = Vec::new();
    let mut exact = Vec::new();
    let mut overlap = 0usize;
    for q in qvecs {
        let t = Instant::now();
        let a = store.nearest(q, 10);
        ann.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let e = store.nearest_exact(q, 10);
        exact.push(t.elapsed().as_secs_f64() * 1e3);
        overlap += a.iter().filter(|x| e.iter().any(|y| y.0 == x.0)).count();
    }
    let ann_recall = overlap as f64 / (10 * qvecs.len()) as f64;
    report.figures.push(Figure::against(
        &format!("{label} cells: ANN top-10 search"),
        "ms",
        Better::Lower,
        summary(&ann)?,
        "exhaustive float scan",
        summary(&exact)?,
    ));
    // The ANN stage inside recall (the policy's candidate count), to see what the rest
    // of recall (routing, lexical anchor, features, ranking) adds to it.
    let ann_k = store.policy().ann_candidates;
    let mut ann_stage = Vec::new();
    for q in qvecs {
        let t = Instant::now();
        std::hint::black_box(store.nearest(q, ann_k));
        ann_stage.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let ann_stage = summary(&ann_stage)?;
    // End-to-end recall (query embedded beforehand).
    let mut lat = Vec::new();
    let mut hits = 0usize;
    for (i, q) in qvecs.iter().enumerate() {
        let t = Instant::now();
        let r = store.recall(&facts[i].query, Some(q), 5);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if r.iter().any(|c| c.cell.id == real_ids[i]) {
            hits += 1;
        }
    }
    let ls = summary(&lat)?;
    let target = match n {
        100_000 => Some("p99 ≤ 5 ms"),
        1_000_000 => Some("p99 ≤ 20 ms"),
        _ => None,
    };
    let mut fig = Figure::alone(
        &format!("{label} cells: recall (candidates + features + ranking)"),
        "ms",
        Better::Lower,
        ls.clone(),
    );
    if let Some(t) = target {
        fig = fig.with_target(t);
    }
    report.figures.push(fig);
    let disk: u64 = walk_size(dir.path());
    report.notes.push(format!(
        "{label}: recall p50 {:.2} ms of which the ANN stage (top {ann_k}) p50 {:.2} ms, p99 {:.2} ms",
        ls.median, ann_stage.median, ann_stage.p99
    ));
    report.notes.push(format!(
        "{label}: wrote {n} cells in {write_secs:.1} s; index build {build_secs:.1} s; recall p50 {:.2} ms p99 {:.2} ms; \
         ANN recall@10 vs exhaustive {ann_recall:.3}; recall@5 of the real facts among all cells {:.3}; store on disk {:.0} MiB",
        ls.median,
        ls.p99,
        hits as f64 / qvecs.len() as f64,
        disk as f64 / (1 << 20) as f64
    ));
    Ok(())
}

fn walk_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_size(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
