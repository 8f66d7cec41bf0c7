//! Server-side tools: the tool plugins found in the plugins folder (`tool_*.wasm`, e.g.
//! `tool-calc`, `tool-script`), offered to the model on the native `/v1/chat` when a request
//! sets `"server_tools": {…}`, and executed by the host inside the plugin sandbox (each call
//! bounded by the plugin runtime's limits: epoch deadline, memory cap, fuel when metered).
//! The worker runs the bounded loop (at most [`MAX_ROUNDS`] rounds) and reports every call.

use std::path::Path;

use engram_plugins::{AnsweredBy, Grants, PluginHost, PluginKind, Slot, ToolError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::openai::{FunctionSpec, ToolSpec};

/// Most tool rounds a turn may run, whatever a request asks.
pub const MAX_ROUNDS: u32 = 8;
/// Rounds when a request gives no `max_rounds`.
pub const DEFAULT_ROUNDS: u32 = 3;
/// Longest tool result fed back to the model, in bytes (the rest is cut with a marker).
pub const MAX_RESULT_BYTES: usize = 4096;

/// The request knob (`"server_tools": {"enabled": true, "max_rounds": 3}`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct ServerToolsKnob {
    /// Offer and run the server's tool plugins (default true when the object is given).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Tool rounds at most (1 to [`MAX_ROUNDS`]).
    #[serde(default)]
    pub max_rounds: Option<u32>,
}

fn yes() -> bool {
    true
}

impl ServerToolsKnob {
    /// The rounds this knob allows.
    pub fn rounds(&self) -> u32 {
        self.max_rounds
            .unwrap_or(DEFAULT_ROUNDS)
            .clamp(1, MAX_ROUNDS)
    }
}

struct Offered {
    spec: ToolSpec,
    slot: usize,
}

/// The loaded tool plugins and the functions they offer.
pub struct ServerTools {
    slots: Vec<Slot>,
    offered: Vec<Offered>,
}

impl std::fmt::Debug for ServerTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTools")
            .field("tools", &self.names())
            .finish()
    }
}

/// One executed call, as reported in the turn's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutedCall {
    /// The round it ran in (1-based).
    pub round: u32,
    /// Function name.
    pub name: String,
    /// Arguments (JSON text).
    pub arguments: String,
    /// The result text, when it succeeded.
    pub result: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Which plugin answered (name and hash), or the fallback with the failure.
    pub answered_by: serde_json::Value,
    /// Wall time of the call, ms.
    pub ms: f64,
}

impl ServerTools {
    /// Load every `tool_*.wasm` component in `dir` with no grants; components that fail to
    /// load are skipped with a warning (the server still starts).
    pub fn load(host: &PluginHost, dir: &Path) -> ServerTools {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "wasm")
                            && p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with("tool_"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        let mut tools = ServerTools {
            slots: Vec::new(),
            offered: Vec::new(),
        };
        for path in paths {
            match host.load(PluginKind::Tool, &path, &Grants::default()) {
                Ok(slot) => tools.add(slot),
                Err(err) => tracing::warn!(path = %path.display(), %err, "tool plugin not loaded"),
            }
        }
        tracing::info!(tools = ?tools.names(), "server-side tools");
        tools
    }

    /// Add a loaded tool slot; functions whose name is taken or invalid are skipped.
    pub fn add(&mut self, slot: Slot) {
        let index = self.slots.len();
        for spec in slot.tool_describe().value {
            let taken = self
                .offered
                .iter()
                .any(|o| o.spec.function.name == spec.name);
            if taken || !crate::openai::valid_function_name(&spec.name) {
                tracing::warn!(name = %spec.name, "tool skipped: name taken or invalid");
                continue;
            }
            let parameters = serde_json::from_str(&spec.json_schema)
                .ok()
                .filter(serde_json::Value::is_object);
            self.offered.push(Offered {
                spec: ToolSpec {
                    kind: "function".into(),
                    function: FunctionSpec {
                        name: spec.name,
                        description: Some(spec.description),
                        parameters,
                    },
                },
                slot: index,
            });
        }
        self.slots.push(slot);
    }

    /// The functions offered, in OpenAI's shape.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.offered.iter().map(|o| o.spec.clone()).collect()
    }

    /// The function names offered.
    pub fn names(&self) -> Vec<String> {
        self.offered
            .iter()
            .map(|o| o.spec.function.name.clone())
            .collect()
    }

    /// Whether `name` is one of the server's functions.
    pub fn has(&self, name: &str) -> bool {
        self.offered.iter().any(|o| o.spec.function.name == name)
    }

    /// Run one call in the sandbox; the result (or the error) is what the model sees.
    pub fn invoke(&self, round: u32, name: &str, arguments: &str) -> ExecutedCall {
        let started = std::time::Instant::now();
        let Some(offered) = self.offered.iter().find(|o| o.spec.function.name == name) else {
            return ExecutedCall {
                round,
                name: name.into(),
                arguments: arguments.into(),
                result: None,
                error: Some(format!("no server tool named `{name}`")),
                answered_by: json!(null),
                ms: 0.0,
            };
        };
        let answer = self.slots[offered.slot].tool_invoke(name, arguments);
        let answered_by = match &answer.by {
            AnsweredBy::Plugin { name, hash } => json!({"plugin": name, "hash": hash}),
            AnsweredBy::Fallback(failure) => {
                json!({"fallback": true, "failure": failure.kind.to_string(), "message": failure.message})
            }
        };
        let (result, error) = match answer.value {
            Ok(text) => (Some(cut(text)), None),
            Err(ToolError::UnknownTool(t)) => (None, Some(format!("unknown tool `{t}`"))),
            Err(ToolError::InvalidArguments(m)) => (None, Some(format!("invalid arguments: {m}"))),
            Err(ToolError::Failed(m)) => (None, Some(cut(m))),
        };
        ExecutedCall {
            round,
            name: name.into(),
            arguments: arguments.into(),
            result,
            error,
            answered_by,
            ms: started.elapsed().as_secs_f64() * 1e3,
        }
    }
}

impl ExecutedCall {
    /// The `tool` message content the model reads.
    pub fn for_model(&self) -> String {
        match (&self.result, &self.error) {
            (Some(result), _) => result.clone(),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => "error: no result".into(),
        }
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_RESULT_BYTES {
        let mut at = MAX_RESULT_BYTES;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str("…(truncated)");
    }
    text
}
