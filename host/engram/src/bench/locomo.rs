//! `engram bench locomo`: retrieval of the evidence turns of the LoCoMo-10 questions.
//!
//! Each LoCoMo conversation is ingested into a fresh memory store through the store's own
//! API — one stored conversation per session, turn by turn, with its speaker, `dia_id` and
//! session date ([`MemoryStore::store_turns`]). Every question is then asked through
//! [`MemoryStore::recall_turns`] (the product's conversation-memory recall: the turn
//! index's embedding ANN and BM25 candidates, ranked by cosine + BM25 + context + speaker),
//! and beside it through a bare-embedding baseline: MiniLM cosine of the question against
//! every turn's bare text, exhaustively. Both see the same turns and the same query
//! embedding, in the same run.
//!
//! recall@k of a question = |evidence turns among the top k| / |evidence turns|, averaged
//! over the questions (a question with three evidence turns and two found scores 2/3).
//! Questions whose evidence names no turn of the conversation are left out and counted.
//!
//! The data (CC BY-NC 4.0, research use) is not part of the repository: it is read from
//! `../shared/data/locomo10.json` beside the checkout, or from `--data-file`.

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;
use anyhow::{bail, Context};
use engram_memory::ann::{dot, normalize};
use engram_memory::{MemoryConfig, MemoryStore, Source, TextEmbedder, TurnInput, TurnWeights};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The k of recall@k.
const KS: [usize; 3] = [1, 5, 10];

/// LoCoMo's question categories (numbering of the released file).
fn category_name(c: u64) -> &'static str {
    match c {
        1 => "multi-hop",
        2 => "temporal",
        3 => "open-domain",
        4 => "single-hop",
        5 => "adversarial",
        _ => "other",
    }
}

/// One turn of a LoCoMo conversation.
struct LoTurn {
    dia_id: String,
    speaker: String,
    /// The turn's text, with the caption of a shared image when there is one.
    text: String,
    session: usize,
    time: Option<i64>,
}

/// One question with its evidence turns.
struct LoQuestion {
    question: String,
    category: u64,
    evidence: Vec<String>,
}

struct LoConversation {
    id: String,
    /// The turns of every session, in order.
    turns: Vec<LoTurn>,
    questions: Vec<LoQuestion>,
}

/// Where the data file is: `--data-file`, else `../shared/data/locomo10.json` beside the checkout.
fn data_path(ctx: &BenchContext) -> PathBuf {
    ctx.data_file.clone().unwrap_or_else(|| {
        ctx.places
            .base
            .join("..")
            .join("shared")
            .join("data")
            .join("locomo10.json")
    })
}

fn load(path: &Path) -> anyhow::Result<Vec<LoConversation>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the LoCoMo-10 data at {} (it is not in the repository: put locomo10.json \
             there, from https://github.com/snap-research/locomo, or pass --data-file FILE)",
            path.display()
        )
    })?;
    let root: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let Some(samples) = root.as_array() else {
        bail!("{}: expected a JSON array of conversations", path.display());
    };
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| parse_sample(s).with_context(|| format!("{}: sample {i}", path.display())))
        .collect()
}

fn parse_sample(s: &Value) -> anyhow::Result<LoConversation> {
    let conv = s
        .get("conversation")
        .and_then(Value::as_object)
        .context("no `conversation` object")?;
    let mut sessions: Vec<(usize, &Vec<Value>)> = conv
        .iter()
        .filter_map(|(k, v)| {
            let n: usize = k.strip_prefix("session_")?.parse().ok()?;
            Some((n, v.as_array()?))
        })
        .collect();
    sessions.sort_by_key(|(n, _)| *n);
    let mut turns = Vec::new();
    for (n, list) in sessions {
        let date = conv
            .get(&format!("session_{n}_date_time"))
            .and_then(Value::as_str);
        let time = date.and_then(parse_locomo_date);
        for t in list {
            let field = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut text = field("text");
            let caption = field("blip_caption");
            if !caption.is_empty() {
                text = format!("{text} [shares {caption}]");
            }
            turns.push(LoTurn {
                dia_id: field("dia_id"),
                speaker: field("speaker"),
                text,
                session: n,
                time,
            });
        }
    }
    let questions = s
        .get("qa")
        .and_then(Value::as_array)
        .context("no `qa` list")?
        .iter()
        .filter_map(|q| {
            let evidence = q
                .get("evidence")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                // A few entries hold several ids ("D8:6; D9:17", "D9:1 D4:4").
                .flat_map(|e| e.split([';', ' ', ',']))
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
            Some(LoQuestion {
                question: q.get("question")?.as_str()?.to_string(),
                category: q.get("category")?.as_u64()?,
                evidence,
            })
        })
        .collect();
    Ok(LoConversation {
        id: s
            .get("sample_id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        turns,
        questions,
    })
}

/// `1:56 pm on 8 May, 2023` → µs since the epoch (UTC).
fn parse_locomo_date(s: &str) -> Option<i64> {
    let (clock, date) = s.split_once(" on ")?;
    let (hm, ampm) = clock.trim().split_once(' ')?;
    let (h, m) = hm.split_once(':')?;
    let (mut h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    match ampm.to_ascii_lowercase().as_str() {
        "pm" if h != 12 => h += 12,
        "am" if h == 12 => h = 0,
        _ => {}
    }
    let parts: Vec<&str> = date.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let [day, month, year] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let month = MONTHS
        .iter()
        .position(|x| *x == month.to_ascii_lowercase())? as i64
        + 1;
    let days = days_from_civil(year.parse().ok()?, month, day.parse().ok()?);
    Some(((days * 24 + h) * 60 + m) * 60 * 1_000_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// recall@k sums per category, for one retriever.
#[derive(Default, Clone)]
struct Tally {
    /// category → (sum of recall@k for each k, questions)
    by_cat: BTreeMap<u64, ([f64; 3], usize)>,
}

impl Tally {
    fn add(&mut self, cat: u64, ranked: &[String], evidence: &HashSet<&str>) {
        let e = self.by_cat.entry(cat).or_default();
        for (i, k) in KS.iter().enumerate() {
            let found = ranked
                .iter()
                .take(*k)
                .filter(|id| evidence.contains(id.as_str()))
                .count();
            e.0[i] += found as f64 / evidence.len() as f64;
        }
        e.1 += 1;
    }

    /// Mean recall@KS[ki] of one category, or over all when `cat` is `None`.
    fn mean(&self, cat: Option<u64>, ki: usize) -> f64 {
        let (sum, n) = self
            .by_cat
            .iter()
            .filter(|(c, _)| cat.is_none_or(|x| x == **c))
            .fold((0.0, 0usize), |(s, n), (_, (v, m))| (s + v[ki], n + m));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
}

fn one(v: f64) -> anyhow::Result<Summary> {
    Summary::of(&[v]).context("no value")
}

fn summary(samples: &[f64]) -> anyhow::Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// Run the suite.
pub fn suite(ctx: &BenchContext) -> anyhow::Result<Report> {
    let path = data_path(ctx);
    let mut convs = load(&path)?;
    if ctx.quick {
        convs.truncate(1);
    }
    let model_dir = ctx.places.models.join(engram_embed::MODEL_DIR_NAME);
    let embedder = Arc::new(engram_embed::Embedder::load(&model_dir).with_context(|| {
        format!(
            "loading all-MiniLM-L6-v2 from {} (run scripts/setup.sh)",
            model_dir.display()
        )
    })?);
    let mut report = Report::new("locomo", ctx.quick, ctx.machine);
    let (mut ours, mut base) = (Tally::default(), Tally::default());
    // Ablations of the pipeline's ranking, same store and queries: each part switched off.
    let full = TurnWeights::default();
    let ablations: Vec<(&str, TurnWeights)> = vec![
        (
            "embedding only (speaker: text)",
            TurnWeights {
                lexical: 0.0,
                context: 0.0,
                speaker: 0.0,
                ..full
            },
        ),
        (
            "without BM25",
            TurnWeights {
                lexical: 0.0,
                ..full
            },
        ),
        (
            "without context",
            TurnWeights {
                context: 0.0,
                ..full
            },
        ),
        (
            "without speaker",
            TurnWeights {
                speaker: 0.0,
                ..full
            },
        ),
    ];
    let mut ablated: Vec<Tally> = vec![Tally::default(); ablations.len()];
    let (mut our_ms, mut base_ms, mut embed_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ctx_tokens, mut q_tokens, mut replay_tokens) = (Vec::new(), Vec::new(), Vec::new());
    let (mut skipped, mut asked, mut ingest_secs, mut n_turns) = (0usize, 0usize, 0f64, 0usize);
    for conv in &convs {
        let dir = tempfile::tempdir_in(ctx.places.artifacts()).or_else(|_| tempfile::tempdir())?;
        let store = MemoryStore::open(
            dir.path(),
            MemoryConfig::durable().with_embedder(embedder.clone()),
        )?;
        // Ingest: one stored conversation per session, through the store's API.
        let t = Instant::now();
        let mut by_session: BTreeMap<usize, Vec<&LoTurn>> = BTreeMap::new();
        for turn in &conv.turns {
            by_session.entry(turn.session).or_default().push(turn);
        }
        for (n, turns) in &by_session {
            let speakers: Vec<&str> = {
                let mut s: Vec<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
                s.sort_unstable();
                s.dedup();
                s
            };
            let summary = format!(
                "LoCoMo {} session {n} between {}",
                conv.id,
                speakers.join(" and ")
            );
            let inputs = turns
                .iter()
                .map(|t| TurnInput {
                    label: t.dia_id.clone(),
                    speaker: t.speaker.clone(),
                    text: t.text.clone(),
                    time: t.time,
                })
                .collect();
            store.store_turns(
                inputs,
                &summary,
                Vec::new(),
                &Source {
                    session: Some(format!("{}-{n}", conv.id)),
                    turn: None,
                },
            )?;
        }
        ingest_secs += t.elapsed().as_secs_f64();
        n_turns += conv.turns.len();
        // Baseline: bare MiniLM cosine over the turns' text.
        let texts: Vec<&str> = conv.turns.iter().map(|t| t.text.as_str()).collect();
        let mut bare: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            bare.extend(TextEmbedder::embed_batch(embedder.as_ref(), chunk));
        }
        bare.iter_mut().for_each(|v| normalize(v));
        let ids: HashSet<&str> = conv.turns.iter().map(|t| t.dia_id.as_str()).collect();
        let whole: String = conv
            .turns
            .iter()
            .map(|t| format!("{}: {}\n", t.speaker, t.text))
            .collect();
        let whole_tokens = embedder.count_tokens(&whole);
        let text_of: HashMap<&str, String> = conv
            .turns
            .iter()
            .map(|t| (t.dia_id.as_str(), format!("{}: {}", t.speaker, t.text)))
            .collect();
        for q in &conv.questions {
            let evidence: HashSet<&str> = q
                .evidence
                .iter()
                .map(String::as_str)
                .filter(|e| ids.contains(e))
                .collect();
            if evidence.is_empty() {
                skipped += 1;
                continue;
            }
            asked += 1;
            let t = Instant::now();
            let mut qv = engram_embed::Embedder::embed(&embedder, &q.question);
            normalize(&mut qv);
            embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let hits = store.recall_turns(&q.question, Some(&qv), 10);
            our_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let ranked: Vec<String> = hits.into_iter().map(|h| h.label).collect();
            ours.add(q.category, &ranked, &evidence);
            for ((_, w), tally) in ablations.iter().zip(ablated.iter_mut()) {
                let labels: Vec<String> = store
                    .recall_turns_with(&q.question, Some(&qv), 10, w)
                    .into_iter()
                    .map(|h| h.label)
                    .collect();
                tally.add(q.category, &labels, &evidence);
            }
            let t = Instant::now();
            let mut scored: Vec<(f32, usize)> = bare
                .iter()
                .enumerate()
                .map(|(i, v)| (dot(&qv, v), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let ranked_base: Vec<String> = scored
                .iter()
                .take(10)
                .map(|(_, i)| conv.turns[*i].dia_id.clone())
                .collect();
            base_ms.push(t.elapsed().as_secs_f64() * 1e3);
            base.add(q.category, &ranked_base, &evidence);
            let context: String = ranked
                .iter()
                .take(5)
                .filter_map(|id| text_of.get(id.as_str()))
                .map(|s| format!("{s}\n"))
                .collect();
            ctx_tokens.push(embedder.count_tokens(&context) as f64);
            q_tokens.push(embedder.count_tokens(&q.question) as f64);
            replay_tokens.push(whole_tokens as f64);
        }
    }
    if asked == 0 {
        bail!("no LoCoMo question had evidence turns in its conversation");
    }
    let mut cats: Vec<u64> = ours.by_cat.keys().copied().collect();
    cats.sort_unstable();
    let baseline = "bare MiniLM cosine over turns";
    for (ki, k) in KS.iter().enumerate() {
        let mut fig = Figure::against(
            &format!("recall@{k} of evidence turns, all {asked} questions"),
            "fraction",
            Better::Higher,
            one(ours.mean(None, ki))?,
            baseline,
            one(base.mean(None, ki))?,
        );
        if *k == 5 {
            fig = fig.with_target("≥ baseline on every category; goal ≥ 0.95 overall");
        }
        report.figures.push(fig);
    }
    for c in &cats {
        let n = ours.by_cat[c].1;
        for (ki, k) in KS.iter().enumerate() {
            report.figures.push(Figure::against(
                &format!(
                    "recall@{k}, category {c} {} ({n} questions)",
                    category_name(*c)
                ),
                "fraction",
                Better::Higher,
                one(ours.mean(Some(*c), ki))?,
                baseline,
                one(base.mean(Some(*c), ki))?,
            ));
        }
    }
    report.figures.push(Figure::against(
        "recall latency, top 10 (query embedded beforehand)",
        "ms",
        Better::Lower,
        summary(&our_ms)?,
        "exhaustive cosine over the conversation's turns",
        summary(&base_ms)?,
    ));
    report.figures.push(Figure::alone(
        "query embedding (MiniLM, one question)",
        "ms",
        Better::Lower,
        summary(&embed_ms)?,
    ));
    report.figures.push(Figure::against(
        "tokens per query: question + top-5 turns",
        "tokens",
        Better::Lower,
        summary(
            &q_tokens
                .iter()
                .zip(&ctx_tokens)
                .map(|(a, b)| a + b)
                .collect::<Vec<_>>(),
        )?,
        "replaying the whole conversation",
        summary(&replay_tokens)?,
    ));
    for ((name, _), tally) in ablations.iter().zip(&ablated) {
        let per_cat: Vec<String> = cats
            .iter()
            .map(|c| format!("{c}: {:.3}", tally.mean(Some(*c), 1)))
            .collect();
        report.notes.push(format!(
            "ablation {name}: recall@5 {:.3} (by category {})",
            tally.mean(None, 1),
            per_cat.join(", ")
        ));
    }
    report.notes.push(format!("data: {}", path.display()));
    report.notes.push(format!(
        "{} conversation(s), {n_turns} turns ingested through MemoryStore::store_turns in {ingest_secs:.1} s \
         (embedding included); {asked} questions asked, {skipped} left out (evidence names no turn)",
        convs.len()
    ));
    report.notes.push(
        "recall@k = |evidence turns in the top k| / |evidence turns| per question, averaged over questions; \
         Engram = MemoryStore::recall_turns (ANN + BM25 candidates; cosine + BM25 + neighbour context + speaker); \
         tokens counted with the MiniLM tokenizer"
            .to_string(),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locomo_dates_parse() {
        // 2023-05-08 13:56 UTC
        assert_eq!(
            parse_locomo_date("1:56 pm on 8 May, 2023"),
            Some(1_683_554_160_000_000)
        );
        assert_eq!(
            parse_locomo_date("12:05 am on 1 January, 1970"),
            Some(5 * 60 * 1_000_000)
        );
        assert_eq!(parse_locomo_date("someday"), None);
    }

    #[test]
    fn recall_at_k_counts_each_evidence_turn() {
        let mut t = Tally::default();
        let ev: HashSet<&str> = ["D1:2", "D1:9"].into_iter().collect();
        let ranked: Vec<String> = ["D1:2", "D1:3", "D1:4", "D1:5", "D1:6", "D1:9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        t.add(1, &ranked, &ev);
        assert_eq!(t.mean(Some(1), 0), 0.5); // @1: one of two
        assert_eq!(t.mean(Some(1), 1), 0.5); // @5: D1:9 is sixth
        assert_eq!(t.mean(None, 2), 1.0); // @10: both
    }
}
