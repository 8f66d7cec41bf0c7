//! Slots: the active plugin of one kind, swappable atomically while calls run.
//!
//! A slot holds an `ArcSwap<Loaded>`. A call takes the current `Arc` and keeps
//! it for its whole duration, so a swap never disturbs in-flight calls; the old
//! plugin is dropped when its last call returns. Failures are counted; after
//! `quarantine_after` consecutive failures the slot stops calling the plugin
//! (every call falls back) until it is swapped or released.

use crate::bindings::types::{
    Candidate, Fact, Features, Ranked, RoundReport, ToolError, ToolSpec, Verdict,
};
use crate::failure::{FailureKind, PluginFailure};
use crate::fallback;
use crate::host::{Instance, LoadError, Loaded, PluginHost};
use crate::kind::PluginKind;
use crate::manifest::Grants;
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who answered a call.
#[derive(Debug, Clone, PartialEq)]
pub enum AnsweredBy {
    /// The plugin, identified by name and component hash.
    Plugin {
        /// Plugin name.
        name: String,
        /// Component hash.
        hash: String,
    },
    /// The built-in default, because the plugin failed.
    Fallback(PluginFailure),
}

/// A call's result after the kind's failure policy was applied.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The value (the plugin's, or the built-in default's).
    pub value: T,
    /// Who produced it.
    pub by: AnsweredBy,
}

/// A slot's counters and state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotHealth {
    /// Calls attempted.
    pub calls: u64,
    /// Calls that failed (including refused ones while backing off).
    pub failures: u64,
    /// Current run of consecutive failures.
    pub consecutive_failures: u32,
    /// Whether the plugin is quarantined.
    pub quarantined: bool,
    /// Swaps done on this slot.
    pub swaps: u64,
    /// The last failure, if any.
    pub last_failure: Option<PluginFailure>,
}

#[derive(Default)]
struct Health {
    consecutive: u32,
    quarantined: bool,
    backoff_until: Option<Instant>,
    last_failure: Option<PluginFailure>,
}

/// What a swap did.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// Hash of the plugin that was replaced.
    pub old_hash: String,
    /// Hash of the plugin now active.
    pub new_hash: String,
    /// Name of the plugin now active.
    pub new_name: String,
}

/// The active plugin of one kind.
pub struct Slot {
    host: PluginHost,
    kind: PluginKind,
    current: ArcSwap<Loaded>,
    health: Mutex<Health>,
    calls: AtomicU64,
    failures: AtomicU64,
    swaps: AtomicU64,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("kind", &self.kind)
            .field("current", &self.current.load().name)
            .finish()
    }
}

fn smoke_candidates() -> Vec<Candidate> {
    vec![Candidate {
        id: "smoke".into(),
        text: "the smoke test candidate".into(),
        features: Features {
            similarity: 0.5,
            recency: 0.5,
            novelty: 0.5,
            lexical_overlap: 0.5,
            kappa_match: false,
            age_seconds: 60.0,
        },
    }]
}

impl Loaded {
    /// Call the plugin once with a harmless input and check the answer's shape.
    /// Agency plugins are only instantiated (a round has side effects).
    pub fn smoke(&self) -> Result<(), PluginFailure> {
        match self.kind {
            PluginKind::Judge => self.judge("smoke test", &smoke_candidates()).map(drop),
            PluginKind::RecallPolicy => self.rank("smoke test", &smoke_candidates()).map(drop),
            PluginKind::Capture => self.capture("What time is it?").map(drop),
            PluginKind::Tool => self.tool_describe().map(drop),
            PluginKind::Agency => self.instantiate().map(drop),
        }
    }

    fn bad_output(&self, message: String) -> PluginFailure {
        PluginFailure::new(&self.name, FailureKind::BadOutput, message)
    }

    fn check_bytes(&self, bytes: usize) -> Result<(), PluginFailure> {
        let cap = self.host.config.limits.result_bytes;
        if bytes > cap {
            return Err(self.bad_output(format!(
                "answer of {bytes} bytes exceeds the {cap}-byte cap"
            )));
        }
        Ok(())
    }

    /// Call the judge directly (no fallback, no health accounting).
    pub fn judge(
        &self,
        query: &str,
        candidates: &[Candidate],
    ) -> Result<Vec<Verdict>, PluginFailure> {
        let v = self.with_instance(|store, inst| match inst {
            Instance::Judge(j) => j
                .engram_plugin_judging()
                .call_judge(store, query, candidates),
            _ => unreachable!("judge slot holds a judge instance"),
        })?;
        if v.len() != candidates.len() {
            return Err(self.bad_output(format!(
                "{} verdicts for {} candidates",
                v.len(),
                candidates.len()
            )));
        }
        if let Some(bad) = v.iter().find(|v| !(0.0..=1.0).contains(&v.confidence)) {
            return Err(self.bad_output(format!("confidence {} outside [0, 1]", bad.confidence)));
        }
        self.check_bytes(v.iter().map(|v| v.evidence.len()).sum())?;
        Ok(v)
    }

    /// Call the recall policy directly.
    pub fn rank(
        &self,
        query: &str,
        candidates: &[Candidate],
    ) -> Result<Vec<Ranked>, PluginFailure> {
        let r = self.with_instance(|store, inst| match inst {
            Instance::RecallPolicy(p) => p
                .engram_plugin_ranking()
                .call_rank(store, query, candidates),
            _ => unreachable!("recall-policy slot holds a recall-policy instance"),
        })?;
        let mut seen = vec![false; candidates.len()];
        for x in &r {
            let i = x.index as usize;
            if i >= candidates.len()
                || std::mem::replace(&mut seen[i], true)
                || !x.score.is_finite()
            {
                return Err(self.bad_output(format!(
                    "ranking entry (index {}, score {}) is out of range, repeated or not finite",
                    x.index, x.score
                )));
            }
        }
        Ok(r)
    }

    /// Call the capture plugin directly.
    pub fn capture(&self, text: &str) -> Result<Vec<Fact>, PluginFailure> {
        let facts = self.with_instance(|store, inst| match inst {
            Instance::Capture(c) => c.engram_plugin_capturing().call_capture(store, text),
            _ => unreachable!("capture slot holds a capture instance"),
        })?;
        if let Some(f) = facts
            .iter()
            .find(|f| f.subject.is_empty() || f.facet.is_empty() || f.value.is_empty())
        {
            return Err(self.bad_output(format!("fact with an empty field: {f:?}")));
        }
        self.check_bytes(
            facts
                .iter()
                .map(|f| f.subject.len() + f.facet.len() + f.value.len() + f.statement.len())
                .sum(),
        )?;
        Ok(facts)
    }

    /// List the tools of a tool plugin.
    pub fn tool_describe(&self) -> Result<Vec<ToolSpec>, PluginFailure> {
        let specs = self.with_instance(|store, inst| match inst {
            Instance::Tool(t) => t.engram_plugin_tools().call_describe(store),
            _ => unreachable!("tool slot holds a tool instance"),
        })?;
        self.check_bytes(
            specs
                .iter()
                .map(|s| s.name.len() + s.description.len() + s.json_schema.len())
                .sum(),
        )?;
        Ok(specs)
    }

    /// Invoke one tool of a tool plugin. The outer error is a plugin failure;
    /// the inner one is the tool's own answer (bad arguments, …).
    pub fn tool_invoke(
        &self,
        name: &str,
        arguments: &str,
    ) -> Result<Result<String, ToolError>, PluginFailure> {
        let r = self.with_instance(|store, inst| match inst {
            Instance::Tool(t) => t.engram_plugin_tools().call_invoke(store, name, arguments),
            _ => unreachable!("tool slot holds a tool instance"),
        })?;
        self.check_bytes(match &r {
            Ok(s) => s.len(),
            Err(
                ToolError::UnknownTool(s) | ToolError::InvalidArguments(s) | ToolError::Failed(s),
            ) => s.len(),
        })?;
        Ok(r)
    }

    /// Run one agency round. The inner error is the plugin's own report.
    pub fn agency_round(&self, budget: u32) -> Result<Result<RoundReport, String>, PluginFailure> {
        self.with_instance(|store, inst| match inst {
            Instance::Agency(a) => a.engram_plugin_maintenance().call_run_round(store, budget),
            _ => unreachable!("agency slot holds an agency instance"),
        })
    }
}

impl Slot {
    pub(crate) fn new(host: PluginHost, loaded: Arc<Loaded>) -> Slot {
        tracing::info!(kind = %loaded.kind, plugin = %loaded.name, hash = %loaded.hash, "slot filled");
        Slot {
            host,
            kind: loaded.kind,
            current: ArcSwap::new(loaded),
            health: Mutex::new(Health::default()),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
        }
    }

    /// The slot's kind.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The plugin active now.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Atomically replace the active plugin by an already prepared one (it is
    /// smoke-called first). In-flight calls finish on the old plugin.
    pub fn swap(&self, next: Arc<Loaded>) -> Result<SwapReport, LoadError> {
        if next.kind != self.kind {
            return Err(LoadError::KindMismatch {
                name: next.name.clone(),
                declared: next.kind.to_string(),
                kind: self.kind,
            });
        }
        next.smoke().map_err(LoadError::Smoke)?;
        let report = SwapReport {
            old_hash: String::new(),
            new_hash: next.hash.clone(),
            new_name: next.name.clone(),
        };
        let old = self.current.swap(next);
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = Health::default();
        self.swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(kind = %self.kind, old = %old.hash, new = %report.new_hash, plugin = %report.new_name, "plugin swapped");
        Ok(SwapReport {
            old_hash: old.hash.clone(),
            ..report
        })
    }

    /// Compile (or load from cache), pre-instantiate and smoke-call the
    /// component at `path`, then swap it in.
    pub fn swap_path(&self, path: &Path, grants: &Grants) -> Result<SwapReport, LoadError> {
        let next = self.host.prepare(self.kind, path, grants)?;
        self.swap(next)
    }

    /// Lift a quarantine (e.g. after the operator looked at the failures).
    pub fn release(&self) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = Health::default();
    }

    /// Counters and state.
    pub fn health(&self) -> SlotHealth {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        SlotHealth {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: h.consecutive,
            quarantined: h.quarantined,
            swaps: self.swaps.load(Ordering::Relaxed),
            last_failure: h.last_failure.clone(),
        }
    }

    /// Run one call with health accounting (quarantine, back-off).
    fn guarded<R>(
        &self,
        f: impl FnOnce(&Loaded) -> Result<R, PluginFailure>,
    ) -> Result<(R, Arc<Loaded>), PluginFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let loaded = self.current.load_full();
        {
            let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let refused = if h.quarantined {
                Some(
                    "plugin is quarantined after repeated failures; swap or release the slot"
                        .to_string(),
                )
            } else {
                h.backoff_until
                    .filter(|t| Instant::now() < *t)
                    .map(|_| "plugin is backing off after a failure".to_string())
            };
            if let Some(msg) = refused {
                drop(h);
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(PluginFailure::new(
                    &loaded.name,
                    FailureKind::Unavailable,
                    msg,
                ));
            }
        }
        match f(&loaded) {
            Ok(r) => {
                let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
                h.consecutive = 0;
                h.backoff_until = None;
                Ok((r, loaded))
            }
            Err(failure) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let cfg = &self.host.inner.config;
                let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
                // A failure of an older plugin must not punish the one swapped in since.
                if Arc::ptr_eq(&loaded, &self.current.load()) {
                    h.consecutive += 1;
                    let exp = h.consecutive.saturating_sub(1).min(10);
                    let backoff = (cfg.backoff_base * (1u32 << exp)).min(Duration::from_secs(30));
                    h.backoff_until = Some(Instant::now() + backoff);
                    if h.consecutive >= cfg.quarantine_after && !h.quarantined {
                        h.quarantined = true;
                        tracing::warn!(kind = %self.kind, plugin = %loaded.name, hash = %loaded.hash,
                            failures = h.consecutive, "plugin quarantined");
                    }
                    h.last_failure = Some(failure.clone());
                }
                tracing::warn!(kind = %self.kind, plugin = %loaded.name, failure = %failure.kind,
                    stderr = %failure.stderr, "plugin call failed: {}", failure.message);
                Err(failure)
            }
        }
    }

    fn answer<T>(
        &self,
        r: Result<(T, Arc<Loaded>), PluginFailure>,
        fallback: impl FnOnce() -> T,
    ) -> Answer<T> {
        match r {
            Ok((value, loaded)) => Answer {
                value,
                by: AnsweredBy::Plugin {
                    name: loaded.name.clone(),
                    hash: loaded.hash.clone(),
                },
            },
            Err(f) => Answer {
                value: fallback(),
                by: AnsweredBy::Fallback(f),
            },
        }
    }

    /// Judge candidates through the plugin, or report its failure.
    pub fn try_judge(
        &self,
        query: &str,
        candidates: &[Candidate],
    ) -> Result<Vec<Verdict>, PluginFailure> {
        self.guarded(|l| l.judge(query, candidates)).map(|r| r.0)
    }

    /// Judge candidates; on failure the built-in judge answers (fail-open).
    pub fn judge(&self, query: &str, candidates: &[Candidate]) -> Answer<Vec<Verdict>> {
        let r = self.guarded(|l| l.judge(query, candidates));
        self.answer(r, || fallback::judge(query, candidates))
    }

    /// Rank candidates; on failure the built-in similarity ranking answers.
    pub fn rank(&self, query: &str, candidates: &[Candidate]) -> Answer<Vec<Ranked>> {
        let r = self.guarded(|l| l.rank(query, candidates));
        self.answer(r, || fallback::rank(candidates))
    }

    /// Extract facts; on failure nothing is admitted (fail-closed).
    pub fn capture(&self, text: &str) -> Answer<Vec<Fact>> {
        let r = self.guarded(|l| l.capture(text));
        self.answer(r, Vec::new)
    }

    /// The tools offered; on failure none (fail-closed).
    pub fn tool_describe(&self) -> Answer<Vec<ToolSpec>> {
        let r = self.guarded(|l| l.tool_describe());
        self.answer(r, Vec::new)
    }

    /// Invoke a tool; on failure the model gets a tool error saying why.
    pub fn tool_invoke(&self, name: &str, arguments: &str) -> Answer<Result<String, ToolError>> {
        let r = self.guarded(|l| l.tool_invoke(name, arguments));
        let reason = r.as_ref().err().map(|f| f.to_string()).unwrap_or_default();
        self.answer(r, || {
            Err(ToolError::Failed(format!("tool unavailable: {reason}")))
        })
    }

    /// Run an agency round; on failure the round is skipped (fail-closed).
    pub fn agency_round(&self, budget: u32) -> Answer<Result<RoundReport, String>> {
        let r = self.guarded(|l| l.agency_round(budget));
        let reason = r.as_ref().err().map(|f| f.to_string()).unwrap_or_default();
        self.answer(r, || Err(format!("round skipped: {reason}")))
    }
}
