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
//!
//! Agency on top (see [`crate::agency`]): a captured fact that overlaps an existing memory is
//! superseded or merged by rule, each decision logged with its reason; "forget …" matches
//! by token overlap, then embedding; questions to the assistant recall the capabilities
//! corpus ([`crate::capabilities`]); stored conversations are recalled as a gist, and in
//! full when the user asks for detail; the heartbeat ([`crate::heartbeat`]) consolidates
//! idle conversations between turns. In no-replay mode ([`compose_prompt`]) the model sees
//! only the system prompt, the rendered memory state and the latest user text.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engram_memory::{ExtractedFact, Fact, MemoryConfig, MemoryStore, Remembered, Selector, Source};
use engram_plugins::{
    Answer, AnsweredBy, Candidate, Features, Grants, HostConfig, PluginHost, PluginKind, Services,
    Slot,
};
use serde::Serialize;
use serde_json::json;

use crate::agency::{self, Plan, StoreBackend};
use crate::heartbeat::{Pulse, RoundSummary, Turn};
use crate::openai::{MemoryKnobs, Message, Role};

mod gist;
mod query;
mod state;

pub use gist::{focused_gist_relevance, gist_relevance, GISTS_PER_TURN};
pub use query::{
    asked_kappa, asked_owner_facet, asked_user_facet, asks_for_facet, asks_what_is_known,
    cued_facet, is_forget_request, is_plural, is_question, names_owner, query_words, question_part,
    singular, states_only, wants_detail, yes_no_verdict,
};
pub use state::{
    answer_opening, display_value, echo_stops, focus_state, lead_in, opened_state_line,
    render_fact, state_line, told_to_user, StateFact, OPENED_INSTRUCTION, STATE_INSTRUCTION,
};

/// The memory block's line that gives the model its answer outright: the capability fact
/// that answers a question to the assistant, or the statement that memory does not hold
/// what the user asks for ([`MemoryServices::abstention`]):
/// `From memory: the answer is "…" If the user asks about it, answer with it.` Framed as
/// the answer (quoted, in the assistant's voice), the default 135M model repeats it; as
/// "what you know about yourself", it answered 0 of 9 capability questions from it.
pub fn answer_line(statement: &str) -> String {
    state::memory_line(&format!("the answer is \"{statement}\""), 1)
}

/// The answer to a "forget …" turn, in the second person: what was erased ("I have
/// forgotten your car's color."), or that nothing stored matched.
fn forget_answer(named: &[String]) -> String {
    if named.is_empty() {
        "I have nothing stored that matches, so there was nothing to forget.".to_string()
    } else {
        format!("I have forgotten {}.", spoken_list(named))
    }
}

use gist::{describe_kappa, summarize, GistQuery};
use query::correction_value;

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
    /// Record conversations for the heartbeat to consolidate (on only with the heartbeat).
    pub consolidate: bool,
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
    /// The agency (maintenance round) slot.
    pub agency: Slot,
    /// The `memory` import the agency plugin works through (also counts reads).
    pub backend: Arc<StoreBackend>,
    /// Activity and live conversations, for the heartbeat.
    pub pulse: Pulse,
    /// κ forgotten since the server started: consolidation never writes them back.
    forgotten: Mutex<HashSet<(String, String)>>,
    /// The folder the slots' components were loaded from.
    plugins_dir: PathBuf,
    /// Embeddings of the capability statements, by text (the store keeps a cell's
    /// embedding in its index only), computed when first needed.
    capability_embeddings: Mutex<HashMap<String, Vec<f32>>>,
}

/// The component file (in the plugins folder) the server loads into the memory slot of
/// `kind`; `None` for tools, which have no single slot (every `tool_*.wasm` is loaded, see
/// [`crate::tools::server::ServerTools::load`]).
pub fn component_file(kind: PluginKind) -> Option<&'static str> {
    match kind {
        PluginKind::Judge => Some("judge_jaccard.wasm"),
        PluginKind::RecallPolicy => Some("recall_concert.wasm"),
        PluginKind::Capture => Some("capture_facts.wasm"),
        PluginKind::Agency => Some("agency_curator.wasm"),
        PluginKind::Tool => None,
    }
}

/// [`component_file`] of a memory slot's kind.
fn slot_file(kind: PluginKind) -> &'static str {
    component_file(kind).expect("the memory slots' kinds each have a component file")
}

/// One recalled memory as reported to the client.
#[derive(Debug, Clone, Serialize)]
pub struct RecalledMemory {
    /// Cell id.
    pub id: String,
    /// The statement as stored.
    pub text: String,
    /// The fact as the memory state renders it to the model ([`render_fact`]).
    pub rendered: String,
    /// The policy's score.
    pub score: f32,
    /// The judge's decision.
    pub accepted: bool,
    /// The judge's confidence.
    pub confidence: f32,
    /// The judge's evidence.
    pub evidence: String,
    /// Whether it went into the prompt (accepted, or in no-replay mode routed to the
    /// query's κ as part of the memory state).
    pub in_prompt: bool,
}

/// What memory did before the answer.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    /// Text of the system message to place before the user's message (none when nothing was
    /// accepted or forgotten).
    pub prompt_block: Option<String>,
    /// Stop strings for the answer: the openings of the instructions in `prompt_block`
    /// ([`echo_stops`]), so that a copied instruction is cut rather than shown.
    pub echo_stops: Vec<String>,
    /// The values of the facts in the memory state, for value anchoring (empty when the
    /// `anchor` knob is off).
    pub anchors: Vec<engram_engine::anchor::Anchor>,
    /// Text the answer opens with (the first words of the capability fact that answers a
    /// question to the assistant, "Your server's" for a fact of the user's, the first words
    /// of the abstention, [`ACKNOWLEDGEMENT`] for a plain statement, "I have forgotten" for a
    /// "forget …" turn; the whole abstention, acknowledgement or forget answer when
    /// [`Recall::direct`]); `None` when there is none or the `opening` knob is off.
    pub opening: Option<String>,
    /// The opening is the whole reply (the acknowledgement, the forget answer or the
    /// abstention, with the `direct` knob on): the model is not run.
    pub direct: bool,
    /// What the answer says instead of a value memory does not hold
    /// ([`MemoryServices::abstention`]); `None` when it holds one or the `abstain` knob is off.
    pub abstained: Option<String>,
    /// Report entries for recalled memories (accepted and rejected).
    pub recalled: Vec<serde_json::Value>,
    /// Report entries for forgotten memories.
    pub forgotten: Vec<serde_json::Value>,
    /// Who answered the policy and judge calls.
    pub answered_by: Vec<serde_json::Value>,
    /// Stored conversations recalled (gist, and the full transcript when asked for).
    pub conversations: Vec<serde_json::Value>,
    /// What the capture plugin read from the user's text (capture on, not a forget turn),
    /// taken before the answer so that the memory state leaves out the κ the user is
    /// stating now, and handed to [`MemoryServices::after_turn`] to be written.
    pub stated: Option<Answer<Vec<engram_plugins::Fact>>>,
}

impl Recall {
    /// Open the reply with `statement`, an answer memory gives in full: its first words,
    /// which the model goes on from, or with the `direct` knob on the whole statement, and
    /// the model is not run. Nothing with the `opening` knob off.
    fn open_with(&mut self, statement: &str, knobs: MemoryKnobs) {
        if knobs.opening == Some(false) {
            return;
        }
        self.direct = knobs.direct != Some(false);
        let opening = if self.direct {
            statement
        } else {
            crate::capabilities::opening(statement)
        };
        self.opening = Some(opening.to_string());
    }
}

/// Most characters of a stored transcript put into a prompt when the user asks for detail.
pub const MAX_TRANSCRIPT_CHARS: usize = 2000;
/// κ-routed candidates the memory state adds beyond what the judge accepted.
pub const STATE_EXTRA: usize = 2;
/// The opening of the reply to a plain statement whose facts capture read. Without it the
/// default 135M model answered "My server's IP is 10.0.0.7." with "I'm sorry for your loss."
/// (probe: 16 such statements, most answered with a condolence or an apology); opened with
/// "Noted." it ended the reply there on 16/16 ("Got it." 8/16; "Noted, " went on).
pub const ACKNOWLEDGEMENT: &str = "Noted.";
/// Most of the user's facts the answer to "What do you know about me?" lists.
pub const MAX_KNOWN_LISTED: usize = 12;
/// Cells an agency maintenance round looks at.
pub const ROUND_BUDGET: u32 = 512;

/// Whether any memory knob asks for the memory services this turn.
pub fn knobs_active(knobs: &MemoryKnobs) -> bool {
    knobs.recall || knobs.capture || knobs.consolidate || knobs.no_replay
}

/// The messages the model sees. With replay (the default) that is the whole conversation
/// with the memory block as a system message right after the last user message (the state
/// closest to the answer, where a small model reads it best); in no-replay mode it is the
/// leading system prompt, the latest user text and the memory state only (nothing at all
/// for memory when none is relevant). Returns (prompt, the replaying prompt it stands in for
/// — only in no-replay mode, to report what replay would have cost).
pub fn compose_prompt(
    messages: &[Message],
    block: Option<&str>,
    no_replay: bool,
) -> (Vec<Message>, Option<Vec<Message>>) {
    let with_block = |mut out: Vec<Message>| {
        if let Some(block) = block {
            let at = out
                .iter()
                .rposition(|m| m.role == Role::User)
                .map_or(out.len(), |i| i + 1);
            out.insert(at, Message::new(Role::System, block));
        }
        out
    };
    if !no_replay {
        return (with_block(messages.to_vec()), None);
    }
    let mut out: Vec<Message> = messages
        .iter()
        .take_while(|m| m.role == Role::System)
        .cloned()
        .collect();
    if let Some(last) = messages.iter().rev().find(|m| m.role == Role::User) {
        out.push(last.clone());
    }
    (with_block(out), Some(with_block(messages.to_vec())))
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
        match crate::capabilities::seed(&store) {
            Ok(0) => {}
            Ok(n) => tracing::info!(facts = n, "seeded the capabilities corpus"),
            Err(err) => tracing::warn!(%err, "cannot seed the capabilities corpus"),
        }
        let store = Arc::new(store);
        let backend = Arc::new(StoreBackend::new(store.clone()));
        let host = PluginHost::new(
            HostConfig {
                cache_dir: Some(settings.plugin_cache_dir.clone()),
                ..HostConfig::default()
            },
            Services {
                memory: Some(backend.clone()),
                ..Services::default()
            },
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
        let judge = load(PluginKind::Judge, slot_file(PluginKind::Judge))?;
        let policy = load(
            PluginKind::RecallPolicy,
            slot_file(PluginKind::RecallPolicy),
        )?;
        let capture = load(PluginKind::Capture, slot_file(PluginKind::Capture))?;
        let agency = load(PluginKind::Agency, slot_file(PluginKind::Agency))?;
        Ok(MemoryServices {
            store,
            host,
            judge,
            policy,
            capture,
            agency,
            backend,
            pulse: Pulse::new(settings.consolidate),
            plugins_dir: settings.plugins_dir.clone(),
            forgotten: Mutex::new(HashSet::new()),
            capability_embeddings: Mutex::new(HashMap::new()),
        })
    }

    /// The component file each swappable slot is loaded from at start (what
    /// [`crate::plugin_watch`] watches).
    pub fn slot_files(&self) -> Vec<(PluginKind, PathBuf)> {
        [
            PluginKind::Judge,
            PluginKind::RecallPolicy,
            PluginKind::Capture,
            PluginKind::Agency,
        ]
        .into_iter()
        .map(|kind| (kind, self.plugins_dir.join(slot_file(kind))))
        .collect()
    }

    /// The slot of a plugin kind the server lets operators swap.
    pub fn slot(&self, kind: PluginKind) -> Option<&Slot> {
        match kind {
            PluginKind::Judge => Some(&self.judge),
            PluginKind::RecallPolicy => Some(&self.policy),
            PluginKind::Capture => Some(&self.capture),
            PluginKind::Agency => Some(&self.agency),
            _ => None,
        }
    }

    /// Before the answer: forget what a "forget …" turn names, then recall for the text
    /// (user facts through policy and judge, self-knowledge for questions to the assistant,
    /// stored conversations as a gist).
    /// `earlier` holds the request's user messages before `user_text`.
    pub fn before_turn(&self, user_text: &str, earlier: &[&str], knobs: MemoryKnobs) -> Recall {
        let mut recall = Recall::default();
        let mut lines = Vec::new();
        // The memory state holds facts of the κ the text names (see `GistQuery::focused`).
        let mut names_kappa = false;
        // The memory state holds a fact of the user's.
        let mut user_facts = false;
        // The openings of the instructions the block carries, for `echo_stops`.
        let mut instructions: Vec<&str> = Vec::new();
        let forget = is_forget_request(user_text);
        if knobs.capture && forget {
            let targets = agency::forget_targets(&self.store, user_text);
            let mut named = Vec::new();
            for target in targets {
                let content = &target.cell.content;
                let kappa = (content.subject.clone(), content.facet.clone());
                // "Forget that I'm allergic to dogs" erases the κ and writes back the items
                // it did not name ("cats"): the erased versions held "dogs".
                let kept = agency::kept_items(&target.cell, user_text);
                match self.store.forget(Selector::Kappa {
                    subject: kappa.0.clone(),
                    facet: kappa.1.clone(),
                }) {
                    Ok(report) => {
                        let ids: Vec<u64> = report.forgotten.iter().map(|(id, _)| *id).collect();
                        let decision =
                            agency::log_decision(&self.store, "forget", &ids, &target.reason);
                        for (id, hash) in &report.forgotten {
                            recall.forgotten.push(json!({
                                "id": id.to_string(),
                                "content_hash": engram_memory::to_hex(hash),
                                "subject": kappa.0,
                                "facet": kappa.1,
                                "reason": target.reason,
                                "decision": decision.as_ref().map(|d| d.seq),
                            }));
                        }
                        match kept {
                            Some((kept, dropped)) => {
                                named.push(self.keep_items(content, &kept, &dropped));
                            }
                            None => {
                                named.push(describe_kappa(&kappa.0, &kappa.1));
                                lock(&self.forgotten)
                                    .insert((kappa.0.to_lowercase(), kappa.1.to_lowercase()));
                            }
                        }
                    }
                    Err(err) => tracing::warn!(%err, "forget failed"),
                }
            }
            if knobs.opening != Some(false) {
                // Spoken to the user, as the answer: without it the default 135M model
                // copied the instruction's third person ("The user's car's color is erased
                // from their memory.").
                let statement = forget_answer(&named);
                lines.push(answer_line(&statement));
                instructions.push(STATE_INSTRUCTION);
                recall.open_with(&statement, knobs);
            } else if named.is_empty() {
                lines.push(
                    "The user asked you to forget something, but no stored memory matched. Say so."
                        .to_string(),
                );
            } else {
                let named: Vec<String> = named
                    .iter()
                    .map(|n| n.replacen("your ", "the user's ", 1))
                    .collect();
                // Worded so that the default 135M model's reply names what was erased
                // ("The user's locker code is forgotten."): 5 of 6 probes, where the former
                // "… Confirm that; do not repeat the old value." got 0 of 6.
                lines.push(format!(
                    "Erased from memory: {}. Tell the user it is forgotten.",
                    named.join(" and ")
                ));
            }
        }
        if knobs.capture && !forget {
            recall.stated = Some(self.capture.capture(user_text));
        }
        // "What do you know about me?" is answered with what memory holds about the user,
        // every current fact of theirs, said to them (the capabilities overview answered it
        // before, since the question addresses the assistant).
        let about_user = knobs.recall && !forget && asks_what_is_known(user_text);
        if about_user {
            let statement = self.known_about_user(&mut recall.recalled);
            lines.push(answer_line(&statement));
            instructions.push(STATE_INSTRUCTION);
            recall.open_with(&statement, knobs);
        }
        // The κ this turn states a value for: their stored cells are what the statement
        // replaces, so they stay out of the memory state (a small model echoes the old
        // value back: "Actually, my server's ip is 10.1.2.8." was answered with 10.1.1.1).
        let restated: Vec<(&str, &str)> = recall
            .stated
            .iter()
            .flat_map(|answer| &answer.value)
            .map(|fact| (fact.subject.as_str(), fact.facet.as_str()))
            .collect();
        // A facet differing by a generic qualifier (`ip_address` for `ip`) is the same
        // property, as the agency decides when it writes.
        let replaces = |content: &engram_memory::CellContent| {
            restated.iter().any(|(subject, facet)| {
                content.subject.eq_ignore_ascii_case(subject)
                    && agency::same_property(&content.facet, facet)
            })
        };
        if knobs.recall && !forget && !about_user {
            let k = knobs.k.unwrap_or(DEFAULT_K).clamp(1, 64) as usize;
            // The query's embedding lets the store rank by meaning (ANN, κ_fine): without
            // it every candidate scores alike and, past a few hundred cells, the κ the
            // question names can fall out of the window. The capabilities corpus is
            // recalled on its own path, so the room it would take is asked for on top.
            let embedding = self.store.embed_query(user_text);
            let room = k + crate::capabilities::CORPUS.len();
            let found: Vec<engram_memory::Candidate> = self
                .store
                .recall(user_text, embedding.as_deref(), room)
                .into_iter()
                .filter(|c| !agency::is_capability(&c.cell))
                .take(k)
                .collect();
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
                // The memory state: what the judge accepted, plus the cells the store routed
                // to the query's κ (subject and facet named), which a token-overlap judge
                // rejects when the statement holds several values ("chess and hiking") or
                // the question is paraphrased. When the question names a κ, only the cells
                // of that κ are kept: a small model copies the first fact it sees, so every
                // other fact is a distractor.
                let mut state: Vec<StateFact> = Vec::new();
                let mut routed = 0;
                // What the turn asks, without the statements it makes on the way ("My name
                // is Ada. What is the capital of France?" asks for no fact of the user's).
                let question = question_part(user_text);
                let words = query_words(&question);
                // A cue word asks for its facet in a question only ("Where do I live?", not
                // "I'd like a pasta recipe").
                let asking = is_question(&question);
                // "What is my dog's name?" asks for the dog's name: its "my" does not name
                // the user's own name ("Where does my wife work?" not the user's employer).
                let asked = asked_owner_facet(&question).or_else(|| asked_kappa(&question));
                let owner_asked = asked.as_ref().is_some_and(|(subject, _)| subject != "user");
                // "Who is my wife?" asks for `user.wife`'s name when that is what memory holds
                // ("How old is my wife?" asks for her age, by its cue).
                let named_thing = asked
                    .as_ref()
                    .filter(|(subject, _)| subject == "user" && cued_facet(&words).is_none())
                    .map(|(_, facet)| format!("user.{facet}"));
                // "What are my kids called?" asks for the names memory holds as the user's
                // `kids` ("My kids are Sam and Lily", "I have two kids, Sam and Lily").
                let named_group = asked.as_ref().and_then(named_group_asked);
                // Verdicts come in the order the candidates were given.
                for (i, ((_, score), candidate)) in order.iter().zip(&ordered).enumerate() {
                    let (accept, confidence, evidence) = verdicts
                        .value
                        .get(i)
                        .map(|v| (v.accept, v.confidence, v.evidence.clone()))
                        .unwrap_or((false, 0.0, "the judge gave no verdict".into()));
                    let cell = found
                        .iter()
                        .find(|c| c.cell.id.to_string() == candidate.id)
                        .map(|c| (&c.cell, c.features));
                    let names_kappa = cell.is_some_and(|(cell, features)| {
                        let content = &cell.content;
                        let named = named_thing.as_deref() == Some(content.subject.as_str())
                            && content.facet == "name";
                        let group = content.subject == "user"
                            && named_group.is_some_and(|g| content.facet.eq_ignore_ascii_case(g));
                        named
                            || group
                            || (features.facet_match
                                || asking && asks_for_facet(&words, &content.facet))
                                && (features.kappa_match || names_owner(&words, &content.subject))
                                && !(owner_asked && content.subject == "user")
                    });
                    let replaced = cell.is_some_and(|(cell, _)| replaces(&cell.content));
                    let in_prompt = !replaced && (accept || (names_kappa && routed < STATE_EXTRA));
                    if accept {
                        if let Ok(id) = candidate.id.parse() {
                            self.backend.note_read(id);
                        }
                    } else if in_prompt {
                        routed += 1;
                    }
                    let rendered = cell
                        .map(|(cell, _)| render_fact(&cell.content))
                        .unwrap_or_else(|| candidate.text.clone());
                    if in_prompt {
                        state.push(StateFact {
                            index: recall.recalled.len(),
                            names_kappa,
                            facet_named: cell.is_some_and(|(_, features)| features.facet_match),
                            confidence,
                            rendered: rendered.clone(),
                            value: cell
                                .map(|(cell, _)| display_value(&cell.content.value.raw).to_string())
                                .unwrap_or_default(),
                            opening: cell.and_then(|(cell, _)| answer_opening(&cell.content)),
                            told: cell.and_then(|(cell, _)| told_to_user(&cell.content)),
                            verdict: cell.and_then(|(cell, _)| {
                                yes_no_verdict(
                                    &question,
                                    display_value(&cell.content.value.raw),
                                    agency::is_collection(&cell.content.facet),
                                )
                            }),
                        });
                    }
                    recall.recalled.push(
                        serde_json::to_value(RecalledMemory {
                            id: candidate.id.clone(),
                            text: candidate.text.clone(),
                            rendered,
                            score: *score,
                            accepted: accept,
                            confidence,
                            evidence,
                            in_prompt,
                        })
                        .unwrap_or_default(),
                    );
                }
                let state = focus_state(state);
                names_kappa = state.iter().any(|f| f.names_kappa);
                let kept: HashSet<usize> = state.iter().map(|f| f.index).collect();
                for (i, entry) in recall.recalled.iter_mut().enumerate() {
                    if entry["in_prompt"] == json!(true) && !kept.contains(&i) {
                        entry["in_prompt"] = json!(false);
                    }
                }
                user_facts = !state.is_empty();
                // A question about a fact it names is answered in the second person: the
                // reply opens with "Your <owner>'s" (the `opening` knob).
                // A question that names several of them ("What's my name and where do I
                // live?") is answered with each, said to the user, by memory: the model went
                // on after the first with the memory state's third person ("Your name is
                // Ada. The user lives in Lyon.").
                let all_told: Option<Vec<String>> = (state.len() >= 2
                    && state.iter().all(|fact| fact.names_kappa))
                .then(|| state.iter().map(|fact| fact.told.clone()).collect())
                .flatten();
                // With the `opening` knob off, the state is given as before the knob existed.
                if let Some(told) = all_told.filter(|_| asking && knobs.opening != Some(false)) {
                    let statement = capitalized(&spoken_list(&told)) + ".";
                    lines.push(answer_line(&statement));
                    instructions.push(STATE_INSTRUCTION);
                    recall.open_with(&statement, knobs);
                } else {
                    // A yes/no question is answered yes or no first ("Do I live in Paris?"
                    // → "No, you live in Lyon.").
                    if knobs.opening != Some(false) && is_question(user_text) {
                        recall.opening =
                            state
                                .first()
                                .filter(|fact| fact.names_kappa)
                                .and_then(|fact| {
                                    let opening = fact.opening.clone()?;
                                    Some(match fact.verdict {
                                        Some(yes) => {
                                            let word = if yes { "Yes" } else { "No" };
                                            format!("{word}, {}", lowercased_first(&opening))
                                        }
                                        None => opening,
                                    })
                                });
                    }
                    if recall.opening.is_some() {
                        lines.extend(opened_state_line(&state));
                        instructions.push(OPENED_INSTRUCTION);
                    } else if let Some(line) = state_line(&state) {
                        lines.push(line);
                        instructions.push(STATE_INSTRUCTION);
                    }
                }
                if knobs.anchor != Some(false) {
                    // The lead is taken from the fact as the answer says it: opened in the
                    // second person ("You speak"), the third person's "user speaks" was never
                    // written, and "I speak Portuguese." was answered "You speak Spanish.".
                    let opened = recall.opening.is_some();
                    recall.anchors = state
                        .iter()
                        .map(|f| {
                            let said = match &f.told {
                                Some(told) if opened => told,
                                _ => &f.rendered,
                            };
                            engram_engine::anchor::Anchor {
                                value: f.value.clone(),
                                lead: lead_in(said, &f.value),
                            }
                        })
                        .collect();
                }
            }
            // A question to the assistant about itself, with no fact of the user's in the
            // state, is answered from the best-matching capability fact, rendered as the
            // answer; the reply opens with its first words unless the `opening` knob is off.
            if !user_facts && crate::capabilities::addresses_assistant(user_text) {
                if let Some((id, text)) = self.self_knowledge(user_text, embedding.as_deref()) {
                    lines.insert(0, answer_line(&text));
                    instructions.push(STATE_INSTRUCTION);
                    if knobs.opening != Some(false) {
                        recall.opening =
                            Some(crate::capabilities::opening(&text).trim_start().to_string());
                    }
                    recall.recalled.push(json!({
                        "id": id.to_string(), "text": text, "accepted": true,
                        "capability": true, "in_prompt": true,
                        "evidence": "the question addresses the assistant",
                    }));
                }
            }
            lines.extend(self.recall_conversations(
                GistQuery::new(user_text).focused(names_kappa),
                user_text,
                embedding.as_deref(),
                &mut recall.conversations,
            ));
            // Nothing in memory for a question about a fact of the user's: the answer says
            // so rather than letting the model invent a value.
            if lines.is_empty() && knobs.abstain != Some(false) {
                if let Some(statement) = self.abstention(user_text, earlier) {
                    lines.push(answer_line(&statement));
                    instructions.push(STATE_INSTRUCTION);
                    recall.open_with(&statement, knobs);
                    recall.abstained = Some(statement);
                }
            }
        }
        // A turn that only states facts capture read (greetings aside) is acknowledged: the
        // reply opens with "Noted." (the memory report lists what was captured).
        let statements: Vec<&str> = recall
            .stated
            .as_ref()
            .map(|a| a.value.iter().map(|f| f.statement.as_str()).collect())
            .unwrap_or_default();
        if knobs.opening != Some(false)
            && recall.opening.is_none()
            && states_only(user_text, &statements)
        {
            recall.open_with(ACKNOWLEDGEMENT, knobs);
        }
        if !lines.is_empty() {
            recall.echo_stops = echo_stops(&instructions);
            recall.prompt_block = Some(lines.join("\n"));
        }
        recall
    }

    /// After the answer: capture facts from the user's text and write them. A short
    /// correction that names no subject ("Actually it's 10.0.0.9") supersedes the fact the
    /// previous user message asked or spoke about, when its value has the same shape.
    /// `stated` is what [`MemoryServices::before_turn`] captured (the capture plugin is
    /// called here when it is `None`).
    pub fn after_turn(
        &self,
        user_text: &str,
        previous_user_text: Option<&str>,
        knobs: MemoryKnobs,
        stated: Option<Answer<Vec<engram_plugins::Fact>>>,
        session: &str,
        turn: u32,
    ) -> (Vec<serde_json::Value>, Option<serde_json::Value>) {
        if !knobs.capture || is_forget_request(user_text) {
            return (Vec::new(), None);
        }
        let facts = stated.unwrap_or_else(|| self.capture.capture(user_text));
        let by = answered("capture", &facts.by);
        let mut proposed = facts.value;
        if proposed.is_empty() {
            proposed.extend(
                previous_user_text.and_then(|previous| self.correction(user_text, previous)),
            );
        }
        let mut captured = Vec::new();
        for fact in proposed {
            let decided = agency::decide(&self.store, fact);
            let fact = decided.fact;
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
                Ok(outcome) => {
                    let decision = match (&decided.plan, outcome) {
                        (Plan::Supersede { old, reason }, Remembered::Superseded { id, .. }) => {
                            agency::log_decision(&self.store, "supersede", &[old.id, id], reason)
                        }
                        (Plan::Merge { old, reason, .. }, Remembered::Superseded { id, .. }) => {
                            agency::log_decision(&self.store, "merge", &[old.id, id], reason)
                        }
                        _ => None,
                    };
                    captured.push(json!({
                        "subject": fact.subject,
                        "facet": fact.facet,
                        "value": fact.value,
                        "statement": fact.statement,
                        "outcome": format!("{outcome:?}"),
                        "decision": decision.map(|d| json!({
                            "seq": d.seq, "op": d.op, "reason": d.reason,
                            "anchor": engram_memory::to_hex(&d.anchor),
                        })),
                    }))
                }
                Err(err) => tracing::warn!(%err, "cannot write a captured fact"),
            }
        }
        (captured, Some(by))
    }

    /// Record a finished turn's conversation for the heartbeat (no-op when it is off). The
    /// conversation is keyed by the session name, or by its first user message.
    pub fn note_turn(&self, session: Option<&str>, messages: &[Message], answer: &str) {
        if !self.pulse.enabled() {
            return;
        }
        let mut turns: Vec<Turn> = messages
            .iter()
            .filter_map(|m| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    _ => return None,
                };
                Some(Turn {
                    role,
                    text: m.content.clone().unwrap_or_default(),
                })
            })
            .collect();
        turns.push(Turn {
            role: "assistant",
            text: answer.to_string(),
        });
        let key = match session {
            Some(name) => format!("session:{name}"),
            None => format!(
                "first:{}",
                crate::sessions::short_hash(
                    turns
                        .iter()
                        .find(|t| t.role == "user")
                        .map_or("", |t| t.text.as_str())
                        .as_bytes()
                )
            ),
        };
        self.pulse.note(&key, session.unwrap_or("derived"), turns);
    }

    /// One heartbeat round: consolidate every conversation idle for `idle`, then run the
    /// agency plugin's maintenance round when anything was consolidated.
    pub fn heartbeat_round(&self, idle: Duration) -> RoundSummary {
        let mut summary = RoundSummary::default();
        for (key, session, turns, upto) in self.pulse.finished(idle) {
            match self.consolidate(&session, &turns) {
                Ok(facts) => {
                    summary.conversations += 1;
                    summary.facts += facts;
                    self.pulse.mark(&key, upto);
                }
                Err(err) => tracing::warn!(%err, session, "cannot consolidate a conversation"),
            }
        }
        if summary.conversations > 0 {
            let answer = self.agency.agency_round(ROUND_BUDGET);
            match &answer.value {
                Ok(report) => {
                    summary.maintenance = true;
                    tracing::info!(
                        examined = report.examined,
                        merged = report.merged,
                        forgotten = report.forgotten,
                        decayed = report.decayed,
                        "agency maintenance round"
                    );
                }
                Err(err) => tracing::warn!(%err, "the agency round failed"),
            }
        }
        summary
    }

    /// Store one conversation segment in the long tier (full transcript + summary) and write
    /// the facts stated in it that memory does not hold yet. Turns are replayed in order: a
    /// later "forget" drops what it names, a later restatement replaces an earlier one.
    /// Returns how many cells were written.
    pub fn consolidate(&self, session: &str, turns: &[Turn]) -> Result<usize, String> {
        let mut facts: Vec<engram_plugins::Fact> = Vec::new();
        let mut asked = Vec::new();
        for turn in turns.iter().filter(|t| t.role == "user") {
            if is_forget_request(&turn.text) {
                let terms = agency::forget_terms(&turn.text);
                facts.retain(|f| {
                    let have = agency::forget_terms(&format!(
                        "{} {} {}",
                        f.subject.replace(['.', '_'], " "),
                        f.facet.replace('_', " "),
                        f.statement
                    ));
                    let n = terms.iter().filter(|t| have.contains(t)).count();
                    (n as f32) < agency::FORGET_MIN_OVERLAP * terms.len().max(1) as f32
                });
                continue;
            }
            let found = self.capture.capture(&turn.text).value;
            if found.is_empty() && turn.text.trim_end().ends_with('?') {
                asked.push(turn.text.trim().to_string());
            }
            for fact in found {
                facts.retain(|f| {
                    !(f.subject.eq_ignore_ascii_case(&fact.subject)
                        && f.facet.eq_ignore_ascii_case(&fact.facet))
                });
                facts.push(fact);
            }
        }
        let forgotten = lock(&self.forgotten).clone();
        let source = Source {
            session: Some(session.to_string()),
            turn: None,
        };
        let mut extracted = Vec::new();
        let mut written = 0;
        let mut topics = Vec::new();
        for fact in &facts {
            let kappa = (fact.subject.to_lowercase(), fact.facet.to_lowercase());
            topics.push(describe_kappa(&fact.subject, &fact.facet));
            if forgotten.contains(&kappa) {
                continue;
            }
            // Live capture (or a later conversation) may already hold this κ: the newer
            // memory wins, consolidation only fills gaps.
            if let Some(cell) = self.store.get(&fact.subject, &fact.facet, None) {
                extracted.push(ExtractedFact {
                    text: fact.statement.clone(),
                    cell: Some(cell.id),
                });
                continue;
            }
            let outcome = self
                .store
                .remember(Fact {
                    subject: fact.subject.clone(),
                    facet: fact.facet.clone(),
                    value: untyped(&fact.value).to_string(),
                    text: Some(fact.statement.clone()),
                    source: source.clone(),
                    ..Fact::default()
                })
                .map_err(|e| e.to_string())?;
            let id = match outcome {
                Remembered::Created(id)
                | Remembered::Unchanged(id)
                | Remembered::Superseded { id, .. } => id,
            };
            written += 1;
            extracted.push(ExtractedFact {
                text: fact.statement.clone(),
                cell: Some(id),
            });
        }
        let transcript: String = turns
            .iter()
            .map(|t| format!("{}: {}\n", t.role, t.text.trim()))
            .collect();
        let summary = summarize(turns.len(), &topics, &asked);
        self.store
            .store_conversation(&transcript, &summary, extracted, &source)
            .map_err(|e| e.to_string())?;
        Ok(written)
    }

    /// What to answer a question about one of the user's facts ([`asked_kappa`]) that
    /// the store does not hold: "I no longer know your car's email: you asked me to forget it."
    /// for a κ forgotten since the server started, otherwise "I have no memory of your
    /// server's ip." when neither the store nor an `earlier` user message of the request
    /// names it (the conversation may hold it in words capture did not read). Without it
    /// the default 135M model invented a value ("Your server's IP is 192.168.0.1.").
    pub fn abstention(&self, user_text: &str, earlier: &[&str]) -> Option<String> {
        if !is_question(user_text) {
            return None;
        }
        let question = question_part(user_text);
        let user_text = question.as_str();
        let (subject, facet) = asked_owner_facet(user_text)
            .or_else(|| asked_kappa(user_text))
            .or_else(|| asked_user_facet(user_text).map(|f| ("user".to_string(), f.to_string())))?;
        let thing_named = subject == "user"
            && self
                .store
                .get(&format!("user.{facet}"), "name", None)
                .is_some();
        let group_named = named_group_asked(&(subject.clone(), facet.clone()))
            .is_some_and(|group| self.store.get("user", group, None).is_some());
        if thing_named || group_named || self.store.get(&subject, &facet, None).is_some() {
            return None;
        }
        let described = describe_kappa(&subject, &facet);
        let forgotten = lock(&self.forgotten)
            .iter()
            .any(|(s, f)| s.eq_ignore_ascii_case(&subject) && agency::same_property(f, &facet));
        if forgotten {
            return Some(format!(
                "I no longer know {described}: you asked me to forget it."
            ));
        }
        let named: Vec<String> = [subject.strip_prefix("user.").unwrap_or(""), &facet]
            .iter()
            .flat_map(|part| part.split('_'))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let told = earlier.iter().any(|text| {
            let words = query_words(text);
            named.iter().all(|w| words.contains(w))
        });
        if told {
            return None;
        }
        Some(format!("I have no memory of {described}."))
    }

    /// After a forget request named some items of a collection only (`dropped`, its κ now
    /// erased): the κ is written anew with the items it keeps; returns what was forgotten,
    /// as the forget answer names it ("that you are allergic to dogs").
    fn keep_items(
        &self,
        content: &engram_memory::CellContent,
        kept: &str,
        dropped: &str,
    ) -> String {
        let fact = Fact {
            subject: content.subject.clone(),
            facet: content.facet.clone(),
            value: kept.to_string(),
            text: Some(agency::restated(content, kept)),
            source: content.source.clone(),
            ..Fact::default()
        };
        match self.store.remember(fact) {
            Ok(written) => {
                let reason = format!(
                    "KEEP ({}, {}): the forget request named {dropped} only; {kept} still holds",
                    content.subject, content.facet
                );
                agency::log_decision(&self.store, "remember", &[written.id()], &reason);
            }
            Err(err) => tracing::warn!(%err, "cannot write back the kept items"),
        }
        let forgotten = engram_memory::CellContent {
            value: engram_memory::TypedValue::parse(dropped),
            ..content.clone()
        };
        match told_to_user(&forgotten) {
            Some(told) => format!("that {told}"),
            None => describe_kappa(&content.subject, &content.facet),
        }
    }

    /// The answer to "What do you know about me?": the user's current facts, said to them
    /// ([`told_to_user`], at most [`MAX_KNOWN_LISTED`], oldest first), each reported in
    /// `recalled`; or that memory holds nothing about them yet.
    fn known_about_user(&self, recalled: &mut Vec<serde_json::Value>) -> String {
        let mut cells: Vec<engram_memory::Cell> = self
            .store
            .list()
            .into_iter()
            .filter(|c| c.valid_to.is_none() && told_to_user(&c.content).is_some())
            .collect();
        cells.sort_by_key(|c| c.content.valid_from);
        let told: Vec<String> = cells
            .iter()
            .take(MAX_KNOWN_LISTED)
            .filter_map(|cell| {
                let sentence = told_to_user(&cell.content)?;
                recalled.push(json!({
                    "id": cell.id.to_string(), "text": cell.content.text, "accepted": true,
                    "in_prompt": true, "rendered": sentence,
                    "evidence": "the question asks what memory holds about the user",
                }));
                Some(sentence)
            })
            .collect();
        if told.is_empty() {
            return "I don't know anything about you yet. Tell me something and I will remember it."
                .to_string();
        }
        let more = cells.len().saturating_sub(told.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        format!("I know that {}{tail}.", spoken_list(&told))
    }

    /// The capability fact that best answers `text` ([`crate::capabilities::rank`]), with its
    /// cell id; `None` when the store holds none of the corpus or the question is a personal
    /// one ([`crate::capabilities::is_personal`]).
    fn self_knowledge(&self, text: &str, embedding: Option<&[f32]>) -> Option<(u64, String)> {
        let cells: Vec<engram_memory::Cell> = crate::capabilities::CORPUS
            .iter()
            .filter_map(|(facet, _)| {
                self.store
                    .get(crate::capabilities::CAPABILITIES_SUBJECT, facet, None)
            })
            .collect();
        let mut known = self
            .capability_embeddings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for cell in &cells {
            if !known.contains_key(&cell.content.text) {
                let embedded = self
                    .store
                    .embed_query(&cell.content.text)
                    .unwrap_or_default();
                known.insert(cell.content.text.clone(), embedded);
            }
        }
        let entries: Vec<crate::capabilities::Entry> = cells
            .iter()
            .map(|cell| crate::capabilities::Entry {
                facet: &cell.content.facet,
                text: &cell.content.text,
                embedding: &known[&cell.content.text],
            })
            .collect();
        if crate::capabilities::is_personal(text, &entries) {
            return None;
        }
        let ranked = crate::capabilities::rank(text, embedding, &entries);
        tracing::debug!(
            question = text,
            embedded = embedding.is_some(),
            ranked = ?ranked
                .iter()
                .map(|(i, score)| format!("{}={score:.3}", entries[*i].facet))
                .collect::<Vec<_>>(),
            "self-knowledge ranking"
        );
        let (best, _) = *ranked.first()?;
        let cell = &cells[best];
        Some((cell.id, cell.content.text.clone()))
    }

    /// Gists of the stored conversations relevant to the text (`query`, read from it: see
    /// [`gist_relevance`] and [`GistQuery::focused`]), at most [`GISTS_PER_TURN`], and the
    /// full transcript of the best one when the user asks for detail; returns prompt lines
    /// and fills the report entries.
    fn recall_conversations(
        &self,
        query: GistQuery,
        text: &str,
        embedding: Option<&[f32]>,
        report: &mut Vec<serde_json::Value>,
    ) -> Vec<String> {
        let stored = self.store.stats().conversations;
        if stored == 0 || !query.can_match() {
            return Vec::new();
        }
        // Every stored gist is scored (the store scores them all anyway): the store's score
        // only orders the relevant ones, so a gist the text names must not be cut first.
        let mut gists: Vec<(usize, engram_memory::Gist)> = self
            .store
            .recall_conversations(text, embedding, stored)
            .into_iter()
            .filter_map(|g| query.relevance(&g.summary).map(|shared| (shared, g)))
            .collect();
        // Stable: gists sharing as many words keep the store's order (score, then address).
        gists.sort_by_key(|g| std::cmp::Reverse(g.0));
        gists.truncate(GISTS_PER_TURN);
        let mut lines = Vec::new();
        let deep = wants_detail(text);
        for (i, (_, gist)) in gists.iter().enumerate() {
            let addr = engram_memory::to_hex(&gist.addr);
            let full = deep && i == 0;
            lines.push(format!(
                "An earlier conversation [{}] (gist): {}",
                &addr[..12],
                gist.summary
            ));
            if full {
                if let Some(content) = self.store.read_conversation(&gist.addr) {
                    let transcript: String = content
                        .transcript
                        .chars()
                        .take(MAX_TRANSCRIPT_CHARS)
                        .collect();
                    lines.push(format!("Its full transcript:\n{transcript}"));
                }
            }
            report.push(json!({
                "addr": addr, "summary": gist.summary, "score": gist.score,
                "facts": gist.fact_count, "full": full,
            }));
        }
        lines
    }
}

/// The group whose names an asked κ is (`user.kids`, `name` or `names` → `kids`): memory
/// holds a named group as a facet of the user's ("My kids are Sam and Lily" → `user`,
/// `kids`), so that is where the answer is.
fn named_group_asked((subject, facet): &(String, String)) -> Option<&str> {
    let group = subject.strip_prefix("user.")?;
    matches!(facet.as_str(), "name" | "names").then_some(group)
}

/// Sentences said as one: "a", "a and b", "a, b, and c".
fn spoken_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [one, two] => format!("{one} and {two}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// The text with its first letter upper case ("your name is Ada" → "Your name is Ada").
fn capitalized(text: &str) -> String {
    recased_first(text, char::to_uppercase)
}

/// The text with its first letter lower case ("You live in" → "you live in").
fn lowercased_first(text: &str) -> String {
    recased_first(text, char::to_lowercase)
}

fn recased_first<I: Iterator<Item = char>>(text: &str, recase: impl Fn(char) -> I) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => recase(first).chain(chars).collect(),
        None => String::new(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

/// Capture plugins give typed values (`ip:10.0.0.7`, `int:4417`); the store recognises
/// shapes itself, so pass the bare value when the prefix names the shape the store would
/// recognise anyway (the plugins' `int:`/`num:` are the store's `number:`).
pub(crate) fn untyped(value: &str) -> &str {
    match value.split_once(':') {
        Some((prefix, rest)) => {
            let shape = engram_memory::TypedValue::parse(rest).shape;
            let same = shape.prefix() == prefix
                || (matches!(prefix, "int" | "num") && shape == engram_memory::Shape::Number);
            if same {
                rest
            } else {
                value
            }
        }
        _ => value,
    }
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
        consolidate: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_line_quotes_the_fact_and_a_copied_instruction_is_cut() {
        let line = answer_line("My endpoints are POST /v1/chat.");
        assert_eq!(
            line,
            "From memory: the answer is \"My endpoints are POST /v1/chat.\" \
             If the user asks about it, answer with it."
        );
        let copied = format!(
            "My endpoints are POST /v1/chat. {}",
            &line[line.find(STATE_INSTRUCTION).unwrap()..]
        );
        let cut = echo_stops(&[STATE_INSTRUCTION])
            .iter()
            .filter_map(|stop| copied.find(stop.as_str()))
            .min();
        assert_eq!(
            cut.map(|at| &copied[..at]),
            Some("My endpoints are POST /v1/chat.")
        );
    }

    #[test]
    fn a_forget_answer_names_what_was_erased_to_the_user() {
        let named = [
            describe_kappa("user.car", "color"),
            describe_kappa("user", "city"),
        ];
        assert_eq!(
            forget_answer(&named),
            "I have forgotten your car's color and your city."
        );
        assert!(forget_answer(&[]).starts_with("I have nothing stored"));
        assert_eq!(
            crate::capabilities::opening(&forget_answer(&named)),
            "I have forgotten"
        );
    }

    #[test]
    fn a_full_answer_is_the_reply_unless_direct_or_opening_is_off() {
        let statement = "I have forgotten your car's color.";
        let open = |knobs: MemoryKnobs| {
            let mut recall = Recall::default();
            recall.open_with(statement, knobs);
            (recall.opening, recall.direct)
        };
        assert_eq!(
            open(MemoryKnobs::default()),
            (Some(statement.to_string()), true)
        );
        let model_goes_on = MemoryKnobs {
            direct: Some(false),
            ..MemoryKnobs::default()
        };
        assert_eq!(
            open(model_goes_on),
            (Some("I have forgotten".to_string()), false)
        );
        let no_opening = MemoryKnobs {
            opening: Some(false),
            ..MemoryKnobs::default()
        };
        assert_eq!(open(no_opening), (None, false));
    }

    #[test]
    fn typed_values_lose_only_a_matching_prefix() {
        assert_eq!(untyped("ip:10.0.0.7"), "10.0.0.7");
        assert_eq!(untyped("https://example.org"), "https://example.org");
        assert_eq!(untyped("ip:not an address"), "ip:not an address");
        assert_eq!(untyped("Lisbon"), "Lisbon");
        assert_eq!(untyped("int:4417"), "4417");
        assert_eq!(untyped("int:not a number"), "int:not a number");
    }

    #[test]
    fn no_replay_keeps_system_state_and_the_latest_user_text() {
        let msg = Message::new;
        let history = vec![
            msg(Role::System, "be brief"),
            msg(Role::User, "My server's IP is 10.0.0.7"),
            msg(Role::Assistant, "Noted."),
            msg(Role::User, "What is my server's IP?"),
        ];
        let (replayed, none) = compose_prompt(&history, Some("- fact"), false);
        assert!(none.is_none());
        assert_eq!(replayed.len(), 5);
        assert_eq!(replayed[4].content.as_deref(), Some("- fact"));
        assert_eq!(replayed[4].role, Role::System);
        let (prompt, replay) = compose_prompt(&history, Some("- fact"), true);
        let texts: Vec<_> = prompt.iter().map(|m| m.content.clone().unwrap()).collect();
        assert_eq!(texts, ["be brief", "What is my server's IP?", "- fact"]);
        assert_eq!(replay.unwrap(), replayed);
        // No relevant memory: nothing is added for it.
        let (bare, _) = compose_prompt(&history, None, true);
        let texts: Vec<_> = bare.iter().map(|m| m.content.clone().unwrap()).collect();
        assert_eq!(texts, ["be brief", "What is my server's IP?"]);
    }
}
