//! The engine worker: one thread owns the model and the sessions' KV caches and runs
//! generations one at a time (the engine's own thread pool parallelises each step).
//!
//! A turn: render the conversation with the model's chat template → tokenize → find the
//! session (named, or derived from the conversation) → keep the longest common prefix of its
//! KV cache → prefill only the new tokens → sample, streaming text deltas (stop strings held
//! back until they cannot match) → file the session under its next name and snapshot it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use engram_engine::{
    generate, ChatMessage, GenerateOptions, Model, SamplerConfig, Session, SessionOptions,
    StopReason,
};

use crate::error::ApiError;
use crate::memory::MemoryServices;
use crate::metrics::Metrics;
use crate::openai::{
    ChatRequest, FinishReason, MemoryKnobs, Message, PromptTokensDetails, Role, ToolCall, Usage,
};
use crate::sessions::{derived_name, SessionCache};

/// One chat turn to generate.
pub struct GenerationRequest {
    /// Completion id (also the abort handle).
    pub id: String,
    /// The client-chosen session name, if any.
    pub session: Option<String>,
    /// The parsed, validated request.
    pub request: ChatRequest,
    /// Tokens to generate at most.
    pub max_tokens: u32,
    /// When the HTTP request arrived (for time-to-first-token).
    pub received: Instant,
    /// The memory knobs in force for this turn (all off: the plain engine, byte for byte).
    pub memory: MemoryKnobs,
}

/// What memory did during a turn (reported by the native endpoint and the console).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    /// Whether any memory knob was on.
    pub enabled: bool,
    /// Memories recalled into the prompt.
    pub recalled: Vec<serde_json::Value>,
    /// Facts captured from the user's text.
    pub captured: Vec<serde_json::Value>,
    /// Memories forgotten on request.
    pub forgotten: Vec<serde_json::Value>,
    /// Which plugin (or fallback) answered each memory call.
    pub plugins: Vec<serde_json::Value>,
    /// Stored conversations recalled (gist first, the full transcript on demand).
    pub conversations: Vec<serde_json::Value>,
    /// No-replay mode's token cost: `prompt_tokens` sent vs `replay_prompt_tokens` that
    /// replaying the transcript would have sent (absent with replay).
    pub tokens: Option<serde_json::Value>,
}

/// Events a generation sends back to its HTTP handler, in order.
#[derive(Debug)]
pub enum GenerationEvent {
    /// The prompt is prefilled and generation begins.
    Started {
        /// The session the turn was filed under.
        session: String,
        /// Tokens in the whole prompt.
        prompt_tokens: u32,
        /// Prompt tokens whose KV state was reused.
        cached_tokens: u32,
    },
    /// More answer text (always whole UTF-8 characters).
    Delta(String),
    /// Generation ended.
    Finished {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Token accounting.
        usage: Usage,
        /// Tool calls the model made, if it made any.
        tool_calls: Option<Vec<ToolCall>>,
        /// What memory did.
        memory: MemoryReport,
    },
    /// The turn failed; nothing more follows.
    Failed(ApiError),
}

enum Job {
    Generate(
        Box<GenerationRequest>,
        mpsc::Sender<GenerationEvent>,
        Arc<AtomicBool>,
    ),
    Shutdown,
}

/// The handlers' side of the worker.
pub struct EngineHandle {
    jobs: std::sync::mpsc::Sender<Job>,
    running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Settings of the worker.
pub struct WorkerConfig {
    /// Folder of session snapshots.
    pub sessions_dir: std::path::PathBuf,
    /// Sessions kept in memory.
    pub max_sessions_in_memory: usize,
    /// Queue bound.
    pub max_queue: usize,
    /// The memory services; `None` when the server runs without memory.
    pub memory: Option<Arc<MemoryServices>>,
}

impl EngineHandle {
    /// Start the worker thread over a loaded model.
    pub fn start(
        model: Arc<Model>,
        config: WorkerConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<EngineHandle> {
        let (tx, rx) = std::sync::mpsc::channel();
        let running = Arc::new(Mutex::new(HashMap::new()));
        let queued = Arc::new(AtomicUsize::new(0));
        let cache = SessionCache::new(config.sessions_dir, config.max_sessions_in_memory)?;
        let mut worker = Worker {
            memory: config.memory,
            model,
            cache,
            metrics,
            running: running.clone(),
            queued: queued.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("engram-engine".into())
            .spawn(move || worker.run(rx))?;
        Ok(EngineHandle {
            jobs: tx,
            running,
            queued,
            max_queue: config.max_queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queue a generation; events arrive on the returned receiver.
    pub fn submit(
        &self,
        request: GenerationRequest,
    ) -> Result<mpsc::Receiver<GenerationEvent>, ApiError> {
        if self.queued.load(Ordering::SeqCst) >= self.max_queue {
            return Err(ApiError::busy(format!(
                "{} generations are already queued; retry shortly",
                self.max_queue
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let cancel = Arc::new(AtomicBool::new(false));
        lock(&self.running).insert(request.id.clone(), cancel.clone());
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.jobs
            .send(Job::Generate(Box::new(request), tx, cancel))
            .map_err(|_| ApiError::internal("the engine worker has stopped".into()))?;
        Ok(rx)
    }

    /// Ask a running or queued generation to stop; false when no such id is known.
    pub fn abort(&self, id: &str) -> bool {
        match lock(&self.running).get(id) {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Stop the worker after the current job and persist every live session.
    pub fn shutdown(&self) {
        let _ = self.jobs.send(Job::Shutdown);
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Worker {
    memory: Option<Arc<MemoryServices>>,
    model: Arc<Model>,
    cache: SessionCache<Session>,
    metrics: Arc<Metrics>,
    running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    queued: Arc<AtomicUsize>,
}

impl Worker {
    fn run(&mut self, jobs: std::sync::mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            match job {
                Job::Shutdown => break,
                Job::Generate(request, events, cancel) => {
                    self.metrics
                        .queue_depth
                        .set(self.queued.load(Ordering::SeqCst) as i64);
                    let id = request.id.clone();
                    if !cancel.load(Ordering::SeqCst) {
                        // The heartbeat stays quiet while a turn runs.
                        let pulse = self.memory.clone();
                        pulse.iter().for_each(|m| m.pulse.turn_started());
                        if let Err(err) = self.generate(*request, &events, &cancel) {
                            let _ = events.blocking_send(GenerationEvent::Failed(err));
                        }
                        pulse.iter().for_each(|m| m.pulse.turn_finished());
                    }
                    lock(&self.running).remove(&id);
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        for (name, session) in self.cache.drain() {
            self.persist(&name, &session);
        }
    }

    fn persist(&self, name: &str, session: &Session) {
        if let Err(err) = self.cache.write_snapshot(name, &session.snapshot()) {
            tracing::warn!(session = name, %err, "cannot write the session snapshot");
        }
    }

    /// Find a session by name: in memory, else restored from its snapshot, else a new one.
    fn open_session(&mut self, name: &str) -> Session {
        if let Some(session) = self.cache.take(name) {
            return session;
        }
        match self.cache.read_snapshot(name) {
            Ok(Some(bytes)) => match Session::restore(&self.model, &bytes) {
                Ok(session) => return session,
                Err(err) => {
                    tracing::warn!(session = name, %err, "snapshot unusable; starting fresh")
                }
            },
            Ok(None) => {}
            Err(err) => tracing::warn!(session = name, %err, "cannot read the snapshot"),
        }
        Session::new(&self.model, SessionOptions::default())
    }

    fn generate(
        &mut self,
        job: GenerationRequest,
        events: &mpsc::Sender<GenerationEvent>,
        cancel: &AtomicBool,
    ) -> Result<(), ApiError> {
        let request = &job.request;
        let knobs = job.memory;
        let memory = self
            .memory
            .clone()
            .filter(|_| crate::memory::knobs_active(&knobs));
        let user_text = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        let mut report = MemoryReport {
            enabled: memory.is_some(),
            ..MemoryReport::default()
        };
        let mut prompt_messages = std::borrow::Cow::Borrowed(&request.messages);
        let mut replay_messages = None;
        if let Some(memory) = &memory {
            let recall = memory.before_turn(&user_text, knobs);
            report.recalled = recall.recalled;
            report.forgotten = recall.forgotten;
            report.plugins = recall.answered_by;
            report.conversations = recall.conversations;
            let (prompt, replay) = crate::memory::compose_prompt(
                &request.messages,
                recall.prompt_block.as_deref(),
                knobs.no_replay,
            );
            prompt_messages = std::borrow::Cow::Owned(prompt);
            replay_messages = replay;
        }
        let prompt = self.render(&prompt_messages)?;
        let prompt_tokens = self.model.tokenizer().encode(&prompt, true);
        if let Some(replay) = replay_messages {
            let replayed = self.render(&replay)?;
            let replay_tokens = self.model.tokenizer().encode(&replayed, true).len();
            report.tokens = Some(serde_json::json!({
                "prompt_tokens": prompt_tokens.len(),
                "replay_prompt_tokens": replay_tokens,
            }));
        }
        let named = job.session.is_some();
        let lookup = job
            .session
            .clone()
            .unwrap_or_else(|| derived_name(&request.messages[..request.messages.len() - 1]));
        let mut session = self.open_session(&lookup);
        let context = session.n_ctx();
        if prompt_tokens.len() >= context {
            self.cache_session(&lookup, session);
            return Err(ApiError::invalid(
                Some("messages".into()),
                format!(
                    "the conversation is {} tokens; the model's context holds {context}: \
                     shorten the history or start a new session",
                    prompt_tokens.len()
                ),
            ));
        }
        // Keep the longest common prefix of the session's KV cache; prefill only the rest.
        let cached = match session.sync(&prompt_tokens) {
            Ok((reused, _)) => reused as u32,
            Err(err) => {
                return Err(ApiError::internal(format!("prefill failed: {err}")));
            }
        };
        self.metrics
            .prompt_tokens
            .inc_by(prompt_tokens.len() as u64);
        self.metrics.cached_tokens.inc_by(cached as u64);
        if events
            .blocking_send(GenerationEvent::Started {
                session: lookup.clone(),
                prompt_tokens: prompt_tokens.len() as u32,
                cached_tokens: cached,
            })
            .is_err()
        {
            self.cache_session(&lookup, session);
            return Ok(());
        }
        let sampler = SamplerConfig {
            temperature: request.temperature.unwrap_or(0.0),
            top_p: request.top_p.unwrap_or(1.0),
            seed: request.seed.unwrap_or(0),
            ..SamplerConfig::default()
        };
        let room = context.saturating_sub(prompt_tokens.len());
        let options = GenerateOptions {
            max_tokens: (job.max_tokens as usize).min(room),
            stop: request.stop_strings(),
            sampler,
        };
        let mut first = true;
        let metrics = self.metrics.clone();
        let received = job.received;
        let outcome = generate(&mut session, &[], &options, |text| {
            if first {
                first = false;
                metrics
                    .time_to_first_token
                    .observe(received.elapsed().as_secs_f64());
            }
            !cancel.load(Ordering::SeqCst)
                && events
                    .blocking_send(GenerationEvent::Delta(text.to_string()))
                    .is_ok()
        });
        let generation = match outcome {
            Ok(generation) => generation,
            Err(err) => {
                // The session may hold a partial answer: drop it rather than cache it.
                return Err(ApiError::internal(format!("generation failed: {err}")));
            }
        };
        let generated = generation.tokens.len() as u32;
        self.metrics.completion_tokens.inc_by(generated as u64);
        let finish_reason = match generation.stop {
            StopReason::MaxTokens => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        let usage = Usage {
            prompt_tokens: prompt_tokens.len() as u32,
            completion_tokens: generated,
            total_tokens: prompt_tokens.len() as u32 + generated,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
        };
        if let Some(memory) = &memory {
            let turn = request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .count() as u32;
            let previous = request
                .messages
                .iter()
                .rev()
                .filter(|m| m.role == Role::User)
                .nth(1)
                .and_then(|m| m.content.as_deref());
            let (captured, by) = memory.after_turn(&user_text, previous, knobs, &lookup, turn);
            report.captured = captured;
            report.plugins.extend(by);
            memory.note_turn(job.session.as_deref(), &request.messages, &generation.text);
        }
        let _ = events.blocking_send(GenerationEvent::Finished {
            finish_reason,
            usage,
            tool_calls: None,
            memory: report,
        });
        // File the session under the name the next turn will look for.
        let next_name = if named {
            lookup.clone()
        } else {
            let mut conversation = request.messages.clone();
            conversation.push(Message {
                role: Role::Assistant,
                ..system_message(generation.text)
            });
            derived_name(&conversation)
        };
        self.persist(&next_name, &session);
        if next_name != lookup {
            // The session moved to its next derived name: drop the snapshot filed under the
            // old one, or every turn of a derived conversation would leave a full KV copy.
            if let Err(err) = self.cache.remove_snapshot(&lookup) {
                tracing::warn!(session = lookup, %err, "cannot remove the superseded snapshot");
            }
        }
        self.cache_session(&next_name, session);
        Ok(())
    }

    fn cache_session(&mut self, name: &str, session: Session) {
        for (evicted, session) in self.cache.insert(name.to_string(), session) {
            self.persist(&evicted, &session);
        }
        self.metrics.sessions_in_memory.set(self.cache.len() as i64);
    }

    fn render(&self, messages: &[Message]) -> Result<String, ApiError> {
        let turns: Vec<ChatMessage> = messages
            .iter()
            .map(|m| {
                ChatMessage::new(
                    m.role.template_name(),
                    m.content.clone().unwrap_or_default(),
                )
            })
            .collect();
        let template = self.model.chat_template().ok_or_else(|| {
            ApiError::internal("the model has no chat template (tokenizer.chat_template)".into())
        })?;
        template
            .render(&turns, true)
            .map_err(|err| ApiError::invalid(Some("messages".into()), err.to_string()))
    }
}

/// A system message carrying `text`.
fn system_message(text: String) -> Message {
    Message {
        role: Role::System,
        content: Some(text),
        tool_calls: None,
        tool_call_id: None,
        name: None,
    }
}
