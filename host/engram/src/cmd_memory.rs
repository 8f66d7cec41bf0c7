//! `engram memory …`: the memory store from the command line.
//!
//! The store lives in `<data>/memory` (`--data DIR` or `ENGRAM_DATA`). Commands that need
//! embeddings (`remember`, `search`, `recall-conversations`) load all-MiniLM-L6-v2 from the
//! models folder when it is there (`--no-embed` skips it); the others never load a model.
//! `ENGRAM_SEAL_KEY` (any string) turns on keyed seals.

use crate::locate::Places;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use engram_memory::{Fact, MemoryConfig, MemoryStore, Selector, Source, TextEmbedder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Arguments of `engram memory`.
#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Do not load the embedding model (recall falls back to κ routing and lexical anchors).
    #[arg(long, global = true)]
    no_embed: bool,
    #[command(subcommand)]
    command: MemoryCommand,
}

/// The `engram memory` subcommands.
#[derive(Subcommand, Debug)]
enum MemoryCommand {
    /// Remember a fact; prints the cell id (a new value for the same subject and facet
    /// supersedes the old one, the same value again changes nothing).
    Remember {
        #[arg(long)]
        subject: String,
        #[arg(long)]
        facet: String,
        #[arg(long)]
        value: String,
        /// The surface statement (default: "<subject> <facet>: <value>").
        #[arg(long)]
        text: Option<String>,
        /// When the fact started to hold (RFC 3339; default now).
        #[arg(long)]
        valid_from: Option<String>,
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        turn: Option<u32>,
    },
    /// Print the current value (or the value as of a time); exit 1 when there is none.
    Get {
        #[arg(long)]
        subject: String,
        #[arg(long)]
        facet: String,
        /// RFC 3339 time, e.g. 2026-11-23T10:00:00Z.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Every version of a fact, oldest first, with when each held.
    History {
        #[arg(long)]
        subject: String,
        #[arg(long)]
        facet: String,
    },
    /// Current facts, one per (subject, facet).
    List,
    /// Erase a fact (every version) by id, by subject and facet, or by token overlap.
    Forget {
        #[arg(long, conflicts_with_all = ["query", "subject"])]
        id: Option<u64>,
        #[arg(long, requires = "facet", conflicts_with = "query")]
        subject: Option<String>,
        #[arg(long, requires = "subject")]
        facet: Option<String>,
        #[arg(long)]
        query: Option<String>,
    },
    /// Show the evidence that a content hash was forgotten.
    ProveForgotten {
        /// The content hash (64 hex digits) printed by `forget`.
        hash: String,
    },
    /// Recall candidates for a query, with their features and default score.
    Search {
        text: String,
        #[arg(short, default_value_t = 5)]
        k: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Store a conversation (transcript file, summary text); prints its address.
    StoreConversation {
        transcript: PathBuf,
        #[arg(long)]
        summary: String,
    },
    /// Gists of the stored conversations that match a query.
    RecallConversations {
        text: String,
        #[arg(short, default_value_t = 3)]
        k: usize,
    },
    /// Print a stored conversation in full.
    ReadConversation { addr: String },
    /// Walk the anchor chain and every record; exit 0 with the line count and head anchor
    /// when everything holds, non-zero naming the first bad line otherwise.
    Verify,
    /// Seal the chain head (keyed when ENGRAM_SEAL_KEY is set) and print the seal.
    Seal,
    /// Export the whole memory as one .atom file.
    Export { file: PathBuf },
    /// Import an .atom file into an empty store (refused unless it verifies).
    Import { file: PathBuf },
    /// Counts of what the store holds.
    Stats,
    /// The exact state signature of the current cells (BLAKE2b of the ring element
    /// Σ κ ⊛ value): equal on two stores that know the same facts, whatever their history.
    Signature,
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("{s:?} is not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z)"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64))
}

fn fmt_time(micros: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn open(places: &Places, embed: bool) -> anyhow::Result<MemoryStore> {
    let mut cfg = MemoryConfig::durable();
    if let Ok(key) = std::env::var("ENGRAM_SEAL_KEY") {
        if !key.is_empty() {
            cfg = cfg.with_seal_key(key.into_bytes());
        }
    }
    if embed {
        let dir = places.models.join(engram_embed::MODEL_DIR_NAME);
        match engram_embed::Embedder::load(&dir) {
            Ok(e) => cfg = cfg.with_embedder(Arc::new(e) as Arc<dyn TextEmbedder>),
            Err(e) => tracing::warn!(
                "no embeddings ({e}); recall uses κ routing and lexical anchors only"
            ),
        }
    }
    let dir = places.data.join("memory");
    MemoryStore::open(&dir, cfg)
        .with_context(|| format!("opening the memory store in {}", dir.display()))
}

/// Run `engram memory`.
pub fn run(places: &Places, args: &MemoryArgs) -> anyhow::Result<()> {
    let embed = !args.no_embed;
    match &args.command {
        MemoryCommand::Remember {
            subject,
            facet,
            value,
            text,
            valid_from,
            session,
            turn,
        } => {
            let store = open(places, embed)?;
            let mut fact = Fact::new(subject, facet, value).source(Source {
                session: session.clone(),
                turn: *turn,
            });
            fact.text = text.clone();
            if let Some(t) = valid_from {
                fact = fact.valid_from(parse_time(t)?);
            }
            let r = store.remember(fact)?;
            println!("{}", r.id());
        }
        MemoryCommand::Get {
            subject,
            facet,
            as_of,
        } => {
            let store = open(places, false)?;
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            match store.get(subject, facet, as_of) {
                Some(c) => println!("{}", c.content.value.raw),
                None => {
                    eprintln!(
                        "no value for ({subject}, {facet}){}",
                        if as_of.is_some() { " at that time" } else { "" }
                    );
                    std::process::exit(1);
                }
            }
        }
        MemoryCommand::History { subject, facet } => {
            let store = open(places, false)?;
            let h = store.history(subject, facet);
            if h.is_empty() {
                eprintln!("no history for ({subject}, {facet})");
                std::process::exit(1);
            }
            for c in h {
                let to = c.valid_to.map_or("now".to_string(), fmt_time);
                println!(
                    "{}\t{}\t{} .. {}\trecorded {}",
                    c.id,
                    c.content.value.normalized,
                    fmt_time(c.content.valid_from),
                    to,
                    fmt_time(c.recorded_at)
                );
            }
        }
        MemoryCommand::List => {
            let store = open(places, false)?;
            for c in store.list() {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.id, c.content.subject, c.content.facet, c.content.value.raw
                );
            }
        }
        MemoryCommand::Forget {
            id,
            subject,
            facet,
            query,
        } => {
            let sel = match (id, subject, facet, query) {
                (Some(id), ..) => Selector::Id(*id),
                (_, Some(s), Some(f), _) => Selector::Kappa {
                    subject: s.clone(),
                    facet: f.clone(),
                },
                (_, _, _, Some(q)) => Selector::Query(q.clone()),
                _ => bail!("say what to forget: --id ID, --subject S --facet F, or --query TEXT"),
            };
            let store = open(places, embed)?;
            let r = store.forget(sel)?;
            for (id, hash) in &r.forgotten {
                println!("forgot cell {id} content {}", engram_memory::to_hex(hash));
            }
            for addr in &r.redacted_conversations {
                println!("redacted conversation {}", engram_memory::to_hex(addr));
            }
        }
        MemoryCommand::ProveForgotten { hash } => {
            let store = open(places, false)?;
            let h =
                engram_memory::hash::from_hex32(hash).context("the hash must be 64 hex digits")?;
            let p = store.prove_forgotten(&h)?;
            println!(
                "forget line {} at {} anchor {}",
                p.line.seq,
                fmt_time(p.line.timestamp),
                engram_memory::to_hex(&p.line.anchor)
            );
            println!("chain verifies up to it: {}", p.chain_ok);
            println!("no live record holds the content: {}", p.no_live_content);
            println!("its key is destroyed: {}", p.key_destroyed);
            if !p.holds() {
                std::process::exit(1);
            }
        }
        MemoryCommand::Search { text, k, json } => {
            let store = open(places, embed)?;
            let q = store.embed_query(text);
            for c in store.recall(text, q.as_deref(), *k) {
                let f = &c.features;
                if *json {
                    let v = serde_json::json!({
                        "id": c.cell.id, "subject": c.cell.content.subject, "facet": c.cell.content.facet,
                        "value": c.cell.content.value.raw, "normalized": c.cell.content.value.normalized,
                        "text": c.cell.content.text, "score": c.score,
                        "features": {
                            "similarity": f.similarity, "fine_similarity": f.fine_similarity, "lexical": f.lexical,
                            "recency": f.recency, "novelty": f.novelty, "read_count": f.read_count,
                            "age_secs": f.age_secs, "kappa_match": f.kappa_match, "facet_match": f.facet_match,
                        }
                    });
                    println!("{v}");
                } else {
                    println!(
                        "{:.3}\t{}\t{}\t{}\t{}",
                        c.score,
                        c.cell.id,
                        c.cell.content.subject,
                        c.cell.content.facet,
                        c.cell.content.value.raw
                    );
                }
            }
        }
        MemoryCommand::StoreConversation {
            transcript,
            summary,
        } => {
            let text = std::fs::read_to_string(transcript)
                .with_context(|| format!("reading {}", transcript.display()))?;
            let store = open(places, embed)?;
            let addr = store.store_conversation(&text, summary, Vec::new(), &Source::default())?;
            println!("{}", engram_memory::to_hex(&addr));
        }
        MemoryCommand::RecallConversations { text, k } => {
            let store = open(places, embed)?;
            let q = store.embed_query(text);
            for g in store.recall_conversations(text, q.as_deref(), *k) {
                println!(
                    "{:.3}\t{}\t{}",
                    g.score,
                    engram_memory::to_hex(&g.addr),
                    g.summary
                );
            }
        }
        MemoryCommand::ReadConversation { addr } => {
            let store = open(places, false)?;
            let c = store
                .read_conversation(&engram_memory::parse_addr(addr)?)
                .context("no conversation at that address")?;
            print!("{}", c.transcript);
        }
        MemoryCommand::Verify => {
            let store = open(places, false)?;
            let r = store.verify()?;
            match &r.problem {
                None => println!(
                    "ok: {} lines, head {}, {} cells, {} conversations, {} seals checked",
                    r.lines,
                    engram_memory::to_hex(&r.head),
                    r.cells,
                    r.conversations,
                    r.seals
                ),
                Some(p) => {
                    eprintln!("verify FAILED: {p}");
                    std::process::exit(2);
                }
            }
        }
        MemoryCommand::Seal => {
            let store = open(places, false)?;
            let s = store.seal()?;
            println!(
                "{{\"count\":{},\"head\":\"{}\",\"time\":\"{}\",\"mac\":{}}}",
                s.count,
                engram_memory::to_hex(&s.head),
                fmt_time(s.time),
                s.mac.map_or("null".to_string(), |m| format!(
                    "\"{}\"",
                    engram_memory::to_hex(&m)
                ))
            );
        }
        MemoryCommand::Export { file } => {
            let store = open(places, false)?;
            let s = store.export_atom(file)?;
            println!(
                "exported {} lines to {} (head {}, state signature {})",
                s.count,
                file.display(),
                engram_memory::to_hex(&s.head),
                store.state_signature().hex()
            );
        }
        MemoryCommand::Import { file } => {
            let store = open(places, false)?;
            let r = store.import_atom(file)?;
            println!(
                "imported {} lines and {} records from {} (state signature {})",
                r.lines,
                r.records,
                file.display(),
                store.state_signature().hex()
            );
        }
        MemoryCommand::Signature => {
            let store = open(places, false)?;
            let sig = store.state_signature();
            println!("{} ({} current cells)", sig.hex(), sig.cells());
        }
        MemoryCommand::Stats => {
            let store = open(places, false)?;
            let s = store.stats();
            println!(
                "lines {}\ncurrent cells {}\nversions {}\nsubjects {}\nconversations {}\nindexed vectors {}",
                s.lines, s.current_cells, s.versions, s.subjects, s.conversations, s.indexed_vectors
            );
        }
    }
    Ok(())
}
