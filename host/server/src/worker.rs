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
    /// Server-side tools for this turn (native endpoint only; `None`: none offered).
    pub server_tools: Option<crate::tools::server::ServerToolsKnob>,
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
    /// Answer tokens that value anchoring chose instead of the model's most likely one, to
    /// continue a memory value exactly (`engram_engine::anchor`).
    pub anchored_tokens: u32,
    /// What the answer was opened with from memory (`crate::memory::Recall::opening`: the
    /// first words of a capability fact, "Your server's", an abstention's first words,
    /// "Noted." or "I have forgotten"; with [`MemoryReport::direct`] the whole answer), part
    /// of the answer's text.
    pub opening: Option<String>,
    /// The opening was the whole reply and the model was not run (`memory.direct`).
    pub direct: bool,
    /// What the answer said instead of a value memory does not hold (`memory.abstain`).
    pub abstained: Option<String>,
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
        /// Whether the turn runs in exact mode.
        exact: bool,
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
        /// Server-side tool calls run during the turn (native endpoint).
        server_tools: Vec<crate::tools::server::ExecutedCall>,
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
    /// The server's tool plugins (offered when a request sets `server_tools`).
    pub tools: Option<Arc<crate::tools::server::ServerTools>>,
    /// Whether the loaded model computes in exact mode (`engram serve --exact`).
    pub default_exact: bool,
    /// Loads the same model file in the other mode (exact when the default is float, float
    /// otherwise), on the first request whose `exact` field asks for it; `None`: such
    /// requests are refused.
    pub load_other_mode: Option<LoadOtherMode>,
}

/// Loads the model in the other arithmetic mode (see [`WorkerConfig::load_other_mode`]).
pub type LoadOtherMode = Box<dyn FnOnce() -> Result<Arc<Model>, String> + Send>;

/// The session cache key of `name` in a mode: exact sessions are filed apart (`NAME.exact`),
/// so a KV cache computed on one path is never continued on the other, and a snapshot
/// written by a float server is never restored into an exact one.
fn cache_key(name: &str, exact: bool) -> String {
    if exact {
        format!("{name}.exact")
    } else {
        name.to_string()
    }
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
            tools: config.tools,
            memory: config.memory,
            model,
            default_exact: config.default_exact,
            other_mode: OtherMode::NotLoaded(config.load_other_mode),
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

/// The model in the mode the server was not started in, loaded on first use.
enum OtherMode {
    NotLoaded(Option<LoadOtherMode>),
    Loaded(Arc<Model>),
    Failed(String),
}

struct Worker {
    memory: Option<Arc<MemoryServices>>,
    /// The model in the server's mode (also renders and tokenizes for both modes: the two
    /// are the same file).
    model: Arc<Model>,
    default_exact: bool,
    other_mode: OtherMode,
    cache: SessionCache<Session>,
    metrics: Arc<Metrics>,
    running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    queued: Arc<AtomicUsize>,
    tools: Option<Arc<crate::tools::server::ServerTools>>,
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

    /// The model computing in the requested mode, loading the other mode's on first use.
    fn model_for(&mut self, exact: bool) -> Result<Arc<Model>, ApiError> {
        if exact == self.default_exact {
            return Ok(self.model.clone());
        }
        if let OtherMode::NotLoaded(load) = &mut self.other_mode {
            let started = Instant::now();
            self.other_mode = match load.take().map(|load| load()) {
                Some(Ok(model)) => {
                    tracing::info!(
                        exact,
                        ms = started.elapsed().as_millis() as u64,
                        "loaded the model in the other arithmetic mode"
                    );
                    OtherMode::Loaded(model)
                }
                Some(Err(err)) => OtherMode::Failed(err),
                None => OtherMode::Failed("this server was started without the other mode".into()),
            };
        }
        match &self.other_mode {
            OtherMode::Loaded(model) => Ok(model.clone()),
            OtherMode::Failed(err) => {
                Err(ApiError::invalid(
                    Some("exact".into()),
                    format!(
                    "cannot run this turn {}: {err}; leave `exact` out to use the server's mode",
                    if exact { "in exact mode" } else { "on the float path" }
                ),
                ))
            }
            OtherMode::NotLoaded(_) => unreachable!("resolved above"),
        }
    }

    /// Find a session by cache key: in memory, else restored from its snapshot, else a new
    /// one, computing with `model`.
    fn open_session(&mut self, name: &str, model: &Arc<Model>) -> Session {
        if let Some(session) = self.cache.take(name) {
            return session;
        }
        match self.cache.read_snapshot(name) {
            Ok(Some(bytes)) => match Session::restore(model, &bytes) {
                Ok(session) => return session,
                Err(err) => {
                    tracing::warn!(session = name, %err, "snapshot unusable; starting fresh")
                }
            },
            Ok(None) => {}
            Err(err) => tracing::warn!(session = name, %err, "cannot read the snapshot"),
        }
        Session::new(model, SessionOptions::default())
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
        let mut stated = None;
        let mut stop = request.stop_strings();
        let mut anchors = Vec::new();
        if let Some(memory) = &memory {
            let earlier: Vec<&str> = request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .filter_map(|m| m.content.as_deref())
                .collect();
            let earlier = &earlier[..earlier.len().saturating_sub(1)];
            let recall = memory.before_turn(&user_text, earlier, knobs);
            stated = recall.stated;
            report.recalled = recall.recalled;
            report.forgotten = recall.forgotten;
            report.plugins = recall.answered_by;
            report.conversations = recall.conversations;
            stop.extend(recall.echo_stops);
            anchors = recall.anchors;
            report.opening = recall.opening;
            report.direct = recall.direct;
            report.abstained = recall.abstained;
            let (prompt, replay) = crate::memory::compose_prompt(
                &request.messages,
                recall.prompt_block.as_deref(),
                knobs.no_replay,
            );
            prompt_messages = std::borrow::Cow::Owned(prompt);
            replay_messages = replay;
        }
        let plan = self.tool_plan(&job)?;
        if plan.is_some() {
            // A reply that may be a tool call is not opened with text.
            report.opening = None;
            report.direct = false;
        }
        // What replaying the transcript would have sent (no-replay mode only).
        let replay_tokens = match &replay_messages {
            Some(replay) => Some(self.render(replay, plan.as_ref())?),
            None => None,
        }
        .map(|replayed| self.model.tokenizer().encode(&replayed, true).len());
        if report.direct {
            return self.reply_directly(
                job,
                memory,
                report,
                user_text,
                stated,
                replay_tokens,
                events,
            );
        }
        let mut prompt = self.render(&prompt_messages, plan.as_ref())?;
        if let Some(opening) = &report.opening {
            prompt.push_str(opening);
        }
        let prompt_tokens = self.model.tokenizer().encode(&prompt, true);
        if let Some(replay_tokens) = replay_tokens {
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
        let exact = request.exact.unwrap_or(self.default_exact);
        let model = self.model_for(exact)?;
        let key = cache_key(&lookup, exact);
        let mut session = self.open_session(&key, &model);
        let context = session.n_ctx();
        if prompt_tokens.len() >= context {
            self.cache_session(&key, session);
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
                exact,
            })
            .is_err()
        {
            self.cache_session(&key, session);
            return Ok(());
        }
        if let Some(opening) = &report.opening {
            if events
                .blocking_send(GenerationEvent::Delta(opening.clone()))
                .is_err()
            {
                self.cache_session(&key, session);
                return Ok(());
            }
        }
        let sampler = SamplerConfig {
            temperature: request.temperature.unwrap_or(0.0),
            top_p: request.top_p.unwrap_or(1.0),
            seed: request.seed.unwrap_or(0),
            ..SamplerConfig::default()
        };
        let server_tools = self
            .tools
            .clone()
            .filter(|_| job.server_tools.is_some_and(|knob| knob.enabled));
        let rounds = job.server_tools.map(|knob| knob.rounds()).unwrap_or(0);
        let mut plan = plan;
        let mut first = true;
        let mut generated = 0u32;
        let mut prompt_len = prompt_tokens.len();
        let mut conversation: Option<Vec<Message>> = None;
        let mut executed = Vec::new();
        let mut rounds_done = 0;
        let (mut answer, finish_reason) = loop {
            let room = context.saturating_sub(prompt_len);
            let options = GenerateOptions {
                max_tokens: (job.max_tokens as usize).min(room),
                stop: stop.clone(),
                sampler,
                anchors: anchors.clone(),
                // Only the first round's answer follows the opening.
                answer_start: if rounds_done == 0 {
                    report.opening.clone().unwrap_or_default()
                } else {
                    String::new()
                },
            };
            let (answer, finish_reason, tokens) = self.answer_once(
                &mut session,
                plan.as_ref(),
                options,
                events,
                cancel,
                (job.received, &mut first, &mut report.anchored_tokens),
            )?;
            generated += tokens;
            // Server-side tools: run the calls in the sandbox and feed the results back,
            // unless a call is the client's (it goes back to the client) or rounds ran out.
            let Some(tools) = server_tools.as_ref().filter(|tools| {
                !answer.calls.is_empty()
                    && answer.calls.iter().all(|call| tools.has(&call.name))
                    && rounds_done < rounds
                    && !cancel.load(Ordering::SeqCst)
            }) else {
                break (answer, finish_reason);
            };
            rounds_done += 1;
            let conversation = conversation.get_or_insert_with(|| prompt_messages.to_vec());
            let calls =
                crate::tools::to_tool_calls(&format!("{}-{rounds_done}", job.id), &answer.calls);
            conversation.push(Message {
                role: Role::Assistant,
                content: (!answer.content.is_empty()).then(|| answer.content.clone()),
                tool_calls: Some(calls.clone()),
                tool_call_id: None,
                name: None,
            });
            for call in &calls {
                let run = tools.invoke(rounds_done, &call.function.name, &call.function.arguments);
                conversation.push(Message {
                    role: Role::Tool,
                    content: Some(run.for_model()),
                    tool_call_id: Some(call.id.clone()),
                    name: Some(call.function.name.clone()),
                    tool_calls: None,
                });
                executed.push(run);
            }
            // Later rounds are the model's choice; the last one offers no server tools, so
            // the model answers in text.
            plan = plan.map(|mut plan| {
                plan.choice = crate::tools::Choice::Auto;
                if rounds_done == rounds {
                    plan.tools.retain(|t| !tools.has(&t.function.name));
                }
                plan
            });
            plan = plan.filter(|plan| !plan.tools.is_empty());
            let prompt = self.render(conversation, plan.as_ref())?;
            let tokens = self.model.tokenizer().encode(&prompt, true);
            if tokens.len() >= context {
                return Err(ApiError::invalid(
                    Some("messages".into()),
                    format!(
                        "the tool results filled the model's context ({context} tokens);                          ask for fewer rounds"
                    ),
                ));
            }
            session
                .sync(&tokens)
                .map_err(|err| ApiError::internal(format!("prefill failed: {err}")))?;
            prompt_len = tokens.len();
        };
        if let Some(opening) = &report.opening {
            answer.content.insert_str(0, opening);
        }
        self.finish_turn(
            FinishedTurn {
                job: &job,
                lookup,
                named,
                prompt_tokens: prompt_len as u32,
                cached,
                generated,
                finish_reason,
                answer,
                memory,
                report,
                user_text,
                stated,
                server_tools: executed,
            },
            Some(session),
            events,
        )
    }

    /// A turn memory answers in full ([`MemoryReport::direct`]): the opening is the reply,
    /// streamed as one delta; the model is not run, so no prompt is sent. A named session is
    /// not touched; a derived one is only refiled under the name the next turn looks for.
    /// `replay_tokens`: what replaying the transcript would have sent (no-replay mode).
    #[allow(clippy::too_many_arguments)]
    fn reply_directly(
        &mut self,
        job: GenerationRequest,
        memory: Option<Arc<MemoryServices>>,
        mut report: MemoryReport,
        user_text: String,
        stated: Option<engram_plugins::Answer<Vec<engram_plugins::Fact>>>,
        replay_tokens: Option<usize>,
        events: &mpsc::Sender<GenerationEvent>,
    ) -> Result<(), ApiError> {
        let reply = report.opening.clone().unwrap_or_default();
        if let Some(replay_tokens) = replay_tokens {
            report.tokens = Some(serde_json::json!({
                "prompt_tokens": 0,
                "replay_prompt_tokens": replay_tokens,
            }));
        }
        let named = job.session.is_some();
        let lookup = job.session.clone().unwrap_or_else(|| {
            derived_name(&job.request.messages[..job.request.messages.len() - 1])
        });
        let exact = job.request.exact.unwrap_or(self.default_exact);
        let key = cache_key(&lookup, exact);
        let session = if named {
            None
        } else {
            let model = self.model_for(exact)?;
            Some(self.open_session(&key, &model))
        };
        let started = GenerationEvent::Started {
            session: lookup.clone(),
            prompt_tokens: 0,
            cached_tokens: 0,
            exact,
        };
        if events.blocking_send(started).is_err()
            || events
                .blocking_send(GenerationEvent::Delta(reply.clone()))
                .is_err()
        {
            if let Some(session) = session {
                self.cache_session(&key, session);
            }
            return Ok(());
        }
        self.metrics
            .time_to_first_token
            .observe(job.received.elapsed().as_secs_f64());
        let answer = crate::tools::parse::ParsedAnswer {
            content: reply,
            calls: Vec::new(),
        };
        self.finish_turn(
            FinishedTurn {
                job: &job,
                lookup,
                named,
                prompt_tokens: 0,
                cached: 0,
                generated: 0,
                finish_reason: FinishReason::Stop,
                answer,
                memory,
                report,
                user_text,
                stated,
                server_tools: Vec::new(),
            },
            session,
            events,
        )
    }

    /// The tools of a turn: the request's own, plus the server's tool plugins when the
    /// request enables them (`server_tools`); `tool_choice` applies to both.
    fn tool_plan(
        &self,
        job: &GenerationRequest,
    ) -> Result<Option<crate::tools::ToolPlan>, ApiError> {
        let request = &job.request;
        let server = self
            .tools
            .as_ref()
            .filter(|_| job.server_tools.is_some_and(|knob| knob.enabled));
        let Some(server) = server else {
            return Ok(crate::tools::ToolPlan::for_request(request));
        };
        let mut merged = request.clone();
        let mut tools = request.tools.clone().unwrap_or_default();
        let extra: Vec<_> = server
            .specs()
            .into_iter()
            .filter(|spec| !tools.iter().any(|t| t.function.name == spec.function.name))
            .collect();
        tools.extend(extra);
        merged.tools = Some(tools);
        let plan = crate::tools::ToolPlan::for_request(&merged);
        if let Some(crate::tools::Choice::Named(name)) = plan.as_ref().map(|p| &p.choice) {
            if !plan.as_ref().is_some_and(|p| p.names().contains(name)) {
                return Err(ApiError::invalid(
                    Some("tool_choice".into()),
                    format!("`tool_choice` names `{name}`, which neither `tools` nor the server's tools offer"),
                ));
            }
        }
        Ok(plan)
    }

    /// One answer from a session holding the prompt: a forced call, or free generation
    /// (with a call's text held back from the deltas when tools are offered). Returns the
    /// parsed answer, why it ended and the tokens it took.
    fn answer_once(
        &mut self,
        session: &mut Session,
        plan: Option<&crate::tools::ToolPlan>,
        mut options: GenerateOptions,
        events: &mpsc::Sender<GenerationEvent>,
        cancel: &AtomicBool,
        (received, first, anchored): (Instant, &mut bool, &mut u32),
    ) -> Result<(crate::tools::parse::ParsedAnswer, FinishReason, u32), ApiError> {
        let metrics = self.metrics.clone();
        if let Some(plan) = plan.filter(|plan| plan.forced()) {
            // The server writes the call; no content is streamed.
            if std::mem::take(first) {
                metrics
                    .time_to_first_token
                    .observe(received.elapsed().as_secs_f64());
            }
            let names = plan.names();
            let target = match &plan.choice {
                crate::tools::Choice::Named(name) => crate::tools::forced::Target::Named(name),
                _ => crate::tools::forced::Target::AnyOf(&names),
            };
            let forced = crate::tools::forced::forced_call(
                session,
                self.tool_protocol(),
                target,
                options.sampler,
                options.max_tokens.max(1),
                &|| cancel.load(Ordering::SeqCst),
            )
            .map_err(|err| ApiError::internal(format!("generation failed: {err}")))?;
            let answer = crate::tools::parse::ParsedAnswer {
                content: String::new(),
                calls: vec![forced.call],
            };
            return Ok((answer, FinishReason::ToolCalls, forced.tokens));
        }
        // With tools offered (auto), a call's text is held back from the content deltas and
        // generation stops at the call's closing tag.
        let tools_auto = plan.is_some();
        if tools_auto {
            options
                .stop
                .push(crate::tools::parse::HERMES_CLOSE.to_string());
            options
                .stop
                .push(crate::tools::parse::SEED_CLOSE.to_string());
        }
        let mut seen = String::new();
        let mut streamed = 0usize;
        let outcome = generate(session, &[], &options, |text| {
            if std::mem::take(first) {
                metrics
                    .time_to_first_token
                    .observe(received.elapsed().as_secs_f64());
            }
            if cancel.load(Ordering::SeqCst) {
                return false;
            }
            let delta = if tools_auto {
                seen.push_str(text);
                let safe = crate::tools::parse::streamable_len(&seen).max(streamed);
                let delta = seen[streamed..safe].to_string();
                streamed = safe;
                delta
            } else {
                text.to_string()
            };
            delta.is_empty() || events.blocking_send(GenerationEvent::Delta(delta)).is_ok()
        });
        // On failure the session may hold a partial answer: the caller drops it.
        let generation =
            outcome.map_err(|err| ApiError::internal(format!("generation failed: {err}")))?;
        let generated = generation.tokens.len() as u32;
        *anchored += generation.anchored as u32;
        let mut finish_reason = match generation.stop {
            StopReason::MaxTokens => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        let answer = match plan {
            Some(plan) => {
                let answer = crate::tools::parse::parse_answer(&generation.text, &plan.names());
                if answer.calls.is_empty() {
                    // No call after all: release the held-back text.
                    if generation.text.len() > streamed {
                        let _ = events.blocking_send(GenerationEvent::Delta(
                            generation.text[streamed..].to_string(),
                        ));
                    }
                } else {
                    finish_reason = FinishReason::ToolCalls;
                }
                answer
            }
            None => crate::tools::parse::ParsedAnswer {
                content: generation.text,
                calls: Vec::new(),
            },
        };
        Ok((answer, finish_reason, generated))
    }

    /// The tool-call protocol of the loaded model's chat template.
    fn tool_protocol(&self) -> crate::tools::Protocol {
        self.model
            .chat_template()
            .map(|t| crate::tools::Protocol::for_template(t.source()))
            .unwrap_or(crate::tools::Protocol::Text)
    }

    /// Account the turn, capture memory, report it and file the session.
    fn finish_turn(
        &mut self,
        turn: FinishedTurn<'_>,
        session: Option<Session>,
        events: &mpsc::Sender<GenerationEvent>,
    ) -> Result<(), ApiError> {
        let FinishedTurn {
            job,
            lookup,
            named,
            prompt_tokens,
            cached,
            generated,
            finish_reason,
            answer,
            memory,
            mut report,
            user_text,
            stated,
            server_tools,
        } = turn;
        let request = &job.request;
        let knobs = job.memory;
        self.metrics.completion_tokens.inc_by(generated as u64);
        let usage = Usage {
            prompt_tokens,
            completion_tokens: generated,
            total_tokens: prompt_tokens + generated,
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
            let (captured, by) =
                memory.after_turn(&user_text, previous, knobs, stated, &lookup, turn);
            report.captured = captured;
            report.plugins.extend(by);
            memory.note_turn(job.session.as_deref(), &request.messages, &answer.content);
        }
        let tool_calls =
            (!answer.calls.is_empty()).then(|| crate::tools::to_tool_calls(&job.id, &answer.calls));
        let _ = events.blocking_send(GenerationEvent::Finished {
            finish_reason,
            usage,
            tool_calls,
            memory: report,
            server_tools,
        });
        // `None`: the turn left the session as it was, under the name the next turn looks
        // for (a direct reply in a named session).
        let Some(session) = session else {
            return Ok(());
        };
        // File the session under the name the next turn will look for: the assistant
        // message as the client will echo it (a tool-call answer's content is its text
        // before the call, `null` when there is none).
        let next_name = if named {
            lookup.clone()
        } else {
            let mut conversation = request.messages.clone();
            conversation.push(Message::new(Role::Assistant, answer.content));
            derived_name(&conversation)
        };
        let exact = request.exact.unwrap_or(self.default_exact);
        let (key, next_key) = (cache_key(&lookup, exact), cache_key(&next_name, exact));
        self.persist(&next_key, &session);
        if next_key != key {
            // The session moved to its next derived name: drop the snapshot filed under the
            // old one, or every turn of a derived conversation would leave a full KV copy.
            if let Err(err) = self.cache.remove_snapshot(&key) {
                tracing::warn!(session = key, %err, "cannot remove the superseded snapshot");
            }
        }
        self.cache_session(&next_key, session);
        Ok(())
    }

    fn cache_session(&mut self, name: &str, session: Session) {
        for (evicted, session) in self.cache.insert(name.to_string(), session) {
            self.persist(&evicted, &session);
        }
        self.metrics.sessions_in_memory.set(self.cache.len() as i64);
    }

    fn render(
        &self,
        messages: &[Message],
        plan: Option<&crate::tools::ToolPlan>,
    ) -> Result<String, ApiError> {
        if plan.is_some() || crate::tools::prompt::has_tool_traffic(messages) {
            let template = self.model.chat_template().ok_or_else(|| {
                ApiError::internal(
                    "the model has no chat template (tokenizer.chat_template)".into(),
                )
            })?;
            return crate::tools::prompt::render(
                template,
                self.model.tokenizer(),
                messages,
                plan.map(|plan| plan.tools.as_slice()),
            );
        }
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

/// Everything [`Worker::finish_turn`] needs about a generated answer.
struct FinishedTurn<'a> {
    job: &'a GenerationRequest,
    lookup: String,
    named: bool,
    prompt_tokens: u32,
    cached: u32,
    generated: u32,
    finish_reason: FinishReason,
    answer: crate::tools::parse::ParsedAnswer,
    memory: Option<Arc<MemoryServices>>,
    report: MemoryReport,
    user_text: String,
    /// What the capture plugin read before the answer, written after it.
    stated: Option<engram_plugins::Answer<Vec<engram_plugins::Fact>>>,
    server_tools: Vec<crate::tools::server::ExecutedCall>,
}
