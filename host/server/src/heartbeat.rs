//! The heartbeat (the seed's KAIROS tick): an idle-gated scheduler inside the server that,
//! between turns, consolidates finished conversations (facts → cells, transcript → full +
//! summary in the long tier) and then runs the agency plugin's maintenance round.
//!
//! It never blocks a chat request: it runs on tokio's blocking pool, never on the engine
//! worker (it needs no model), it only starts a round when no turn is queued or running and
//! none arrived for the idle threshold, and a round touches the store only through the same
//! short critical sections a turn's capture uses. Off (no interval) means no task is started
//! and no conversation is recorded: a strict no-op.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// When the heartbeat runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// Time between ticks; `None` = heartbeat off.
    pub interval: Option<Duration>,
    /// Quiet time (no turn queued, running or arrived) before a tick does any work; also
    /// how long a conversation must be idle to count as finished.
    pub idle: Duration,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings {
            interval: None,
            idle: Duration::from_secs(30),
        }
    }
}

impl HeartbeatSettings {
    /// Settings from milliseconds (`interval_ms` 0 = off).
    pub fn from_millis(interval_ms: u64, idle_ms: u64) -> HeartbeatSettings {
        HeartbeatSettings {
            interval: (interval_ms > 0).then(|| Duration::from_millis(interval_ms)),
            idle: Duration::from_millis(idle_ms),
        }
    }

    /// Whether the heartbeat runs.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }
}

/// One turn of a live conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// What was said.
    pub text: String,
}

/// A conversation the heartbeat may consolidate.
#[derive(Debug, Clone)]
pub struct LiveConversation {
    /// The session it belongs to.
    pub session: String,
    /// Every turn so far.
    pub turns: Vec<Turn>,
    /// Turns already consolidated (a continuation is stored as a new segment).
    pub consolidated: usize,
    /// When the last turn was recorded.
    pub last_activity: Instant,
}

/// What one heartbeat round did (reported in the log and to tests through the store).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundSummary {
    /// Conversation segments stored in the long tier.
    pub conversations: usize,
    /// Facts written as cells.
    pub facts: usize,
    /// Whether the agency plugin's maintenance round ran.
    pub maintenance: bool,
}

/// Activity tracking and the live conversations, shared by the worker and the heartbeat.
#[derive(Debug)]
pub struct Pulse {
    enabled: bool,
    busy: AtomicUsize,
    last_turn_ms: AtomicU64,
    started: Instant,
    conversations: Mutex<HashMap<String, LiveConversation>>,
}

impl Pulse {
    /// Tracking for a heartbeat that is on (`enabled`) or off (every call a no-op).
    pub fn new(enabled: bool) -> Pulse {
        Pulse {
            enabled,
            busy: AtomicUsize::new(0),
            last_turn_ms: AtomicU64::new(0),
            started: Instant::now(),
            conversations: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the heartbeat is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A turn started (or was queued).
    pub fn turn_started(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.last_turn_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// A turn ended.
    pub fn turn_finished(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        self.last_turn_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// Whether no turn is running and none ended within `idle`.
    pub fn quiet_for(&self, idle: Duration) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
            && self
                .now_ms()
                .saturating_sub(self.last_turn_ms.load(Ordering::SeqCst))
                >= idle.as_millis() as u64
    }

    /// Record the conversation of a finished turn (no-op when the heartbeat is off).
    pub fn note(&self, key: &str, session: &str, turns: Vec<Turn>) {
        if !self.enabled {
            return;
        }
        let mut map = self.conversations.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(key.to_string()).or_insert(LiveConversation {
            session: session.to_string(),
            turns: Vec::new(),
            consolidated: 0,
            last_activity: Instant::now(),
        });
        // The client sends the whole history; keep what was already consolidated counted.
        if turns.len() < entry.consolidated {
            entry.consolidated = 0;
        }
        entry.turns = turns;
        entry.last_activity = Instant::now();
    }

    /// Conversations idle for `idle` with turns not yet consolidated: (key, session, the
    /// new turns, the total turn count to mark once stored).
    pub fn finished(&self, idle: Duration) -> Vec<(String, String, Vec<Turn>, usize)> {
        let map = self.conversations.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .filter(|(_, c)| c.last_activity.elapsed() >= idle && c.turns.len() > c.consolidated)
            .map(|(k, c)| {
                (
                    k.clone(),
                    c.session.clone(),
                    c.turns[c.consolidated..].to_vec(),
                    c.turns.len(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Mark `upto` turns of conversation `key` consolidated.
    pub fn mark(&self, key: &str, upto: usize) {
        let mut map = self.conversations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get_mut(key) {
            c.consolidated = c.consolidated.max(upto.min(c.turns.len()));
        }
    }
}

/// Start the heartbeat task when it is on; `None` when off or without memory.
pub fn spawn(
    settings: HeartbeatSettings,
    memory: Option<Arc<crate::memory::MemoryServices>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = settings.interval?;
    let memory = memory?;
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !memory.pulse.quiet_for(settings.idle) {
                continue;
            }
            let services = memory.clone();
            let idle = settings.idle;
            match tokio::task::spawn_blocking(move || services.heartbeat_round(idle)).await {
                Ok(summary) if summary.conversations > 0 || summary.maintenance => {
                    tracing::info!(?summary, "heartbeat round")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "the heartbeat round panicked"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(n: usize) -> Vec<Turn> {
        (0..n)
            .map(|i| Turn {
                role: if i % 2 == 0 { "user" } else { "assistant" },
                text: format!("turn {i}"),
            })
            .collect()
    }

    #[test]
    fn off_records_nothing() {
        let pulse = Pulse::new(false);
        pulse.note("a", "a", turns(2));
        assert!(pulse.finished(Duration::ZERO).is_empty());
    }

    #[test]
    fn finished_conversations_are_handed_out_once_per_segment() {
        let pulse = Pulse::new(true);
        pulse.note("a", "a", turns(2));
        assert!(
            pulse.finished(Duration::from_secs(60)).is_empty(),
            "not idle yet"
        );
        let ready = pulse.finished(Duration::ZERO);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].2.len(), 2);
        pulse.mark("a", ready[0].3);
        assert!(pulse.finished(Duration::ZERO).is_empty());
        pulse.note("a", "a", turns(4));
        let next = pulse.finished(Duration::ZERO);
        assert_eq!(next[0].2, turns(4)[2..].to_vec(), "only the continuation");
    }

    #[test]
    fn busy_turns_keep_the_server_loud() {
        let pulse = Pulse::new(true);
        pulse.turn_started();
        assert!(!pulse.quiet_for(Duration::ZERO));
        pulse.turn_finished();
        assert!(pulse.quiet_for(Duration::ZERO));
        assert!(!pulse.quiet_for(Duration::from_secs(60)));
    }
}
