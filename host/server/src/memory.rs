//! Memory-informed turns: recall before the answer, capture after it.
//!
//! Recall: the store proposes candidates for the user's text (κ cascade, embedding ANN,
//! lexical anchor) → the recall-policy plugin ranks them → the judge plugin accepts or
//! rejects each with evidence → the accepted ones are rendered compactly into a system
//! message placed just before the user's message. Capture: the capture plugin proposes facts
//! from the user's text, which the store writes (superseding the same subject + facet).
//! A "forget …" turn erases the matching facts through the store's verifiable forgetting.
//!
//! Every step is reported in the turn's [`MemoryReport`], including which plugin (or the
//! host's fallback, when a plugin failed) answered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engram_memory::{Fact, MemoryConfig, MemoryStore, Selector, Source};
use engram_plugins::{
    AnsweredBy, Candidate, Features, Grants, HostConfig, PluginHost, PluginKind, Services, Slot,
};
use serde::Serialize;
use serde_json::json;

use crate::openai::MemoryKnobs;

/// Candidates recalled when a request gives no `k`.
pub const DEFAULT_K: u32 = 8;

/// Why the memory services could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemorySetupError {
    /// The embedding model could not be loaded.
    #[error("cannot load the embedding model from {dir}: {message} (run scripts/setup.sh)")]
    Embedder {
        /// Model folder.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The store could not be opened.
    #[error("cannot open the memory store in {dir}: {message}")]
    Store {
        /// Store folder.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A plugin could not be loaded.
    #[error("cannot load the {kind} plugin {path}: {message} (run scripts/setup.sh to build the default plugins, or serve with --no-memory)")]
    Plugin {
        /// Plugin kind.
        kind: PluginKind,
        /// Component path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Where the memory services find their parts.
#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// The store's folder.
    pub store_dir: PathBuf,
    /// The all-MiniLM-L6-v2 folder.
    pub embedder_dir: PathBuf,
    /// Folder of the built default plugin components.
    pub plugins_dir: PathBuf,
    /// Folder of the compiled-component cache.
    pub plugin_cache_dir: PathBuf,
}

/// The store and the memory behaviour plugins, shared by every turn.
pub struct MemoryServices {
    /// The memory store.
    pub store: Arc<MemoryStore>,
    /// The plugin host (kept for loading replacements).
    pub host: PluginHost,
    /// The recall judge slot.
    pub judge: Slot,
    /// The recall policy slot.
    pub policy: Slot,
    /// The fact capture slot.
    pub capture: Slot,
}

/// One recalled memory as reported to the client.
#[derive(Debug, Clone, Serialize)]
pub struct RecalledMemory {
    /// Cell id.
    pub id: String,
    /// The statement.
    pub text: String,
    /// The policy's score.
    pub score: f32,
    /// The judge's decision.
    pub accepted: bool,
    /// The judge's confidence.
    pub confidence: f32,
    /// The judge's evidence.
    pub evidence: String,
}

/// What memory did before the answer.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    /// Text of the system message to place before the user's message (none when nothing was
    /// accepted or forgotten).
    pub prompt_block: Option<String>,
    /// Report entries for recalled memories (accepted and rejected).
    pub recalled: Vec<serde_json::Value>,
    /// Report entries for forgotten memories.
    pub forgotten: Vec<serde_json::Value>,
    /// Who answered the policy and judge calls.
    pub answered_by: Vec<serde_json::Value>,
}

impl MemoryServices {
    /// Open the store (with the MiniLM embedder) and load the default judge, policy and
    /// capture plugins.
    pub fn open(settings: &MemorySettings) -> Result<MemoryServices, MemorySetupError> {
        let embedder = engram_embed::Embedder::load(&settings.embedder_dir).map_err(|err| {
            MemorySetupError::Embedder {
                dir: settings.embedder_dir.clone(),
                message: err.to_string(),
            }
        })?;
        let store = MemoryStore::open(
            &settings.store_dir,
            MemoryConfig::durable().with_embedder(Arc::new(embedder)),
        )
        .map_err(|err| MemorySetupError::Store {
            dir: settings.store_dir.clone(),
            message: err.to_string(),
        })?;
        let host = PluginHost::new(
            HostConfig {
                cache_dir: Some(settings.plugin_cache_dir.clone()),
                ..HostConfig::default()
            },
            Services::default(),
        )
        .map_err(|err| MemorySetupError::Plugin {
            kind: PluginKind::Judge,
            path: settings.plugins_dir.clone(),
            message: err.to_string(),
        })?;
        let load = |kind: PluginKind, file: &str| {
            let path = settings.plugins_dir.join(file);
            host.load(kind, &path, &Grants::default())
                .map_err(|err| MemorySetupError::Plugin {
                    kind,
                    path: path.clone(),
                    message: err.to_string(),
                })
        };
        let judge = load(PluginKind::Judge, "judge_jaccard.wasm")?;
        let policy = load(PluginKind::RecallPolicy, "recall_concert.wasm")?;
        let capture = load(PluginKind::Capture, "capture_facts.wasm")?;
        Ok(MemoryServices {
            store: Arc::new(store),
            host,
            judge,
            policy,
            capture,
        })
    }

    /// The slot of a plugin kind the server lets operators swap.
    pub fn slot(&self, kind: PluginKind) -> Option<&Slot> {
        match kind {
            PluginKind::Judge => Some(&self.judge),
            PluginKind::RecallPolicy => Some(&self.policy),
            PluginKind::Capture => Some(&self.capture),
            _ => None,
        }
    }

    /// Before the answer: forget what a "forget …" turn names, then recall for the text.
    pub fn before_turn(&self, user_text: &str, knobs: MemoryKnobs) -> Recall {
        let mut recall = Recall::default();
        let mut lines = Vec::new();
        if knobs.capture && is_forget_request(user_text) {
            match self.store.forget(Selector::Query(user_text.to_string())) {
                Ok(report) => {
                    for (id, hash) in &report.forgotten {
                        recall.forgotten.push(json!({
                            "id": id.to_string(),
                            "content_hash": engram_memory::to_hex(hash),
                        }));
                    }
                    if report.forgotten.is_empty() {
                        lines.push(
                            "The user asked to forget something, but no stored memory matched."
                                .to_string(),
                        );
                    } else {
                        lines.push(format!(
                            "The user asked to forget something: {} stored memory version(s) were erased. Confirm this; do not repeat the forgotten content.",
                            report.forgotten.len()
                        ));
                    }
                }
                Err(err) => tracing::warn!(%err, "forget failed"),
            }
        }
        if knobs.recall && !is_forget_request(user_text) {
            let k = knobs.k.unwrap_or(DEFAULT_K).clamp(1, 64) as usize;
            let found = self.store.recall(user_text, None, k);
            if !found.is_empty() {
                let candidates: Vec<Candidate> = found
                    .iter()
                    .map(|c| Candidate {
                        id: c.cell.id.to_string(),
                        text: c.cell.content.text.clone(),
                        features: Features {
                            similarity: c.features.similarity.clamp(0.0, 1.0),
                            recency: c.features.recency,
                            novelty: c.features.novelty,
                            lexical_overlap: c.features.lexical,
                            kappa_match: c.features.kappa_match,
                            age_seconds: c.features.age_secs,
                        },
                    })
                    .collect();
                let ranked = self.policy.rank(user_text, &candidates);
                recall
                    .answered_by
                    .push(answered("recall-policy", &ranked.by));
                let mut order: Vec<(usize, f32)> = ranked
                    .value
                    .iter()
                    .filter(|r| (r.index as usize) < candidates.len())
                    .map(|r| (r.index as usize, r.score))
                    .collect();
                if order.is_empty() {
                    order = (0..candidates.len()).map(|i| (i, found[i].score)).collect();
                }
                let ordered: Vec<Candidate> =
                    order.iter().map(|(i, _)| candidates[*i].clone()).collect();
                let verdicts = self.judge.judge(user_text, &ordered);
                recall.answered_by.push(answered("judge", &verdicts.by));
                let mut accepted = Vec::new();
                // Verdicts come in the order the candidates were given.
                for (i, ((_, score), candidate)) in order.iter().zip(&ordered).enumerate() {
                    let (accept, confidence, evidence) = verdicts
                        .value
                        .get(i)
                        .map(|v| (v.accept, v.confidence, v.evidence.clone()))
                        .unwrap_or((false, 0.0, "the judge gave no verdict".into()));
                    if accept {
                        accepted.push(candidate.text.clone());
                    }
                    recall.recalled.push(
                        serde_json::to_value(RecalledMemory {
                            id: candidate.id.clone(),
                            text: candidate.text.clone(),
                            score: *score,
                            accepted: accept,
                            confidence,
                            evidence,
                        })
                        .unwrap_or_default(),
                    );
                }
                if !accepted.is_empty() {
                    lines.push("Facts you remember about the user (use them to answer):".into());
                    lines.extend(accepted.iter().map(|text| format!("- {text}")));
                }
            }
        }
        if !lines.is_empty() {
            recall.prompt_block = Some(lines.join("\n"));
        }
        recall
    }

    /// After the answer: capture facts from the user's text and write them. A short
    /// correction that names no subject ("Actually it's 10.0.0.9") supersedes the fact the
    /// previous user message asked or spoke about, when its value has the same shape.
    pub fn after_turn(
        &self,
        user_text: &str,
        previous_user_text: Option<&str>,
        knobs: MemoryKnobs,
        session: &str,
        turn: u32,
    ) -> (Vec<serde_json::Value>, Option<serde_json::Value>) {
        if !knobs.capture || is_forget_request(user_text) {
            return (Vec::new(), None);
        }
        let facts = self.capture.capture(user_text);
        let by = answered("capture", &facts.by);
        let mut proposed = facts.value;
        if proposed.is_empty() {
            proposed.extend(
                previous_user_text.and_then(|previous| self.correction(user_text, previous)),
            );
        }
        let mut captured = Vec::new();
        for fact in proposed {
            let write = Fact {
                subject: fact.subject.clone(),
                facet: fact.facet.clone(),
                value: untyped(&fact.value).to_string(),
                text: Some(fact.statement.clone()),
                source: Source {
                    session: Some(session.to_string()),
                    turn: Some(turn),
                },
                ..Fact::default()
            };
            match self.store.remember(write) {
                Ok(outcome) => captured.push(json!({
                    "subject": fact.subject,
                    "facet": fact.facet,
                    "value": fact.value,
                    "statement": fact.statement,
                    "outcome": format!("{outcome:?}"),
                })),
                Err(err) => tracing::warn!(%err, "cannot write a captured fact"),
            }
        }
        (captured, Some(by))
    }
}

impl MemoryServices {
    /// Resolve "actually it's X" against the fact the previous user message was about.
    fn correction(&self, text: &str, previous: &str) -> Option<engram_plugins::Fact> {
        let value = correction_value(text)?;
        let shape = engram_memory::TypedValue::parse(value).shape;
        let about = self.store.recall(previous, None, 4);
        let target = about.iter().find(|c| {
            c.cell.content.value.shape == shape
                && (c.features.kappa_match || c.features.facet_match)
        })?;
        let content = &target.cell.content;
        // Restate the old statement with the new value, so recall and judges read a plain fact.
        let statement =
            if content.text.contains(&content.value.raw) && !content.value.raw.is_empty() {
                content.text.replace(&content.value.raw, value)
            } else {
                format!("{} {} is {value}", content.subject, content.facet)
            };
        Some(engram_plugins::Fact {
            subject: content.subject.clone(),
            facet: content.facet.clone(),
            value: value.to_string(),
            statement,
        })
    }
}

/// The value of a correction such as "Actually it's 10.0.0.9" or "No, it is Porto."
fn correction_value(text: &str) -> Option<&str> {
    let lower = text.trim().to_lowercase();
    let starts = [
        "actually ",
        "actually, ",
        "no, ",
        "no ",
        "correction: ",
        "sorry, ",
        "",
    ];
    let verbs = ["it's ", "it is ", "its ", "that's ", "that is "];
    for start in starts {
        for verb in verbs {
            let prefix = format!("{start}{verb}");
            if lower.starts_with(&prefix) {
                let value = text.trim()[prefix.len()..]
                    .trim()
                    .trim_end_matches(['.', '!']);
                let words = value.split_whitespace().count();
                return (1..=4).contains(&words).then_some(value);
            }
        }
    }
    None
}

/// Capture plugins give typed values (`ip:10.0.0.7`); the store recognises shapes itself, so
/// pass the bare value when the prefix names the shape the store would recognise anyway.
fn untyped(value: &str) -> &str {
    match value.split_once(':') {
        Some((prefix, rest)) if engram_memory::TypedValue::parse(rest).shape.prefix() == prefix => {
            rest
        }
        _ => value,
    }
}

/// Whether the user's text asks to forget something.
pub fn is_forget_request(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    ["forget ", "please forget ", "erase ", "stop remembering "]
        .iter()
        .any(|marker| lower.starts_with(marker))
}

fn answered(call: &str, by: &AnsweredBy) -> serde_json::Value {
    match by {
        AnsweredBy::Plugin { name, hash } => json!({"call": call, "plugin": name, "hash": hash}),
        AnsweredBy::Fallback(failure) => {
            json!({"call": call, "fallback": true, "failure": failure.to_string()})
        }
    }
}

/// Default settings under a data folder, with models and plugins where setup puts them.
pub fn default_settings(data_dir: &Path, models_dir: &Path, plugins_dir: &Path) -> MemorySettings {
    MemorySettings {
        store_dir: data_dir.join("memory"),
        embedder_dir: models_dir.join("all-MiniLM-L6-v2"),
        plugins_dir: plugins_dir.to_path_buf(),
        plugin_cache_dir: data_dir.join("plugin-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_lose_only_a_matching_prefix() {
        assert_eq!(untyped("ip:10.0.0.7"), "10.0.0.7");
        assert_eq!(untyped("https://example.org"), "https://example.org");
        assert_eq!(untyped("ip:not an address"), "ip:not an address");
        assert_eq!(untyped("Lisbon"), "Lisbon");
    }

    #[test]
    fn corrections_yield_their_value() {
        assert_eq!(correction_value("Actually it's 10.0.0.9"), Some("10.0.0.9"));
        assert_eq!(correction_value("No, it is Porto."), Some("Porto"));
        assert_eq!(
            correction_value("it's a long story about many things"),
            None
        );
        assert_eq!(correction_value("My server's IP is 10.0.0.7"), None);
    }

    #[test]
    fn forget_requests_are_recognised() {
        assert!(is_forget_request("Forget my server's IP"));
        assert!(is_forget_request("  please forget where I live"));
        assert!(!is_forget_request("I never forget a face"));
        assert!(!is_forget_request("What is my server's IP?"));
    }
}
