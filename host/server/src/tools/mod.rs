//! Tools in chat turns.
//!
//! - [`prompt`]: how the offered tools (and earlier calls/results) reach the model — the chat
//!   template's own tool support, else the seed's `<tool name="…">{json}</tool>` protocol.
//! - [`parse`]: finding calls in the model's text (Hermes/Qwen `<tool_call>` and the seed's
//!   form) and holding a call's text back from streamed content.
//! - [`json`] and [`forced`]: `tool_choice` `"required"` / named — the server writes the call
//!   prefix and constrains the arguments to a JSON object.
//!
//! [`ToolPlan`] is what a request asked for; the worker turns it into a generation.

pub mod forced;
pub mod json;
pub mod parse;
pub mod prompt;
pub mod server;

use crate::openai::{ChatRequest, FunctionCall, ToolCall, ToolChoice, ToolChoiceMode, ToolSpec};

pub use prompt::Protocol;

/// How the model must treat the offered tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The model may call one or answer in text.
    Auto,
    /// The model must call one of them (the server forces it).
    Required,
    /// The model must call this one (the server forces it).
    Named(String),
}

/// The tools of one request and how they are to be used.
#[derive(Debug, Clone)]
pub struct ToolPlan {
    /// The offered tools.
    pub tools: Vec<ToolSpec>,
    /// `tool_choice`.
    pub choice: Choice,
}

impl ToolPlan {
    /// The plan for a request; `None` when no tools are offered or `tool_choice` is `"none"`
    /// (the model is then not shown the tools at all).
    pub fn for_request(request: &ChatRequest) -> Option<ToolPlan> {
        let tools = request.tools.clone().filter(|tools| !tools.is_empty())?;
        let choice = match &request.tool_choice {
            None | Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Choice::Auto,
            Some(ToolChoice::Mode(ToolChoiceMode::None)) => return None,
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Choice::Required,
            Some(ToolChoice::Named { function, .. }) => Choice::Named(function.name.clone()),
        };
        Some(ToolPlan { tools, choice })
    }

    /// The offered function names.
    pub fn names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.function.name.clone()).collect()
    }

    /// Whether the server forces a call.
    pub fn forced(&self) -> bool {
        self.choice != Choice::Auto
    }
}

/// OpenAI-shaped tool calls, with ids unique to this completion (`call_<hash>_<index>`).
pub fn to_tool_calls(completion_id: &str, calls: &[parse::ParsedCall]) -> Vec<ToolCall> {
    let tag = crate::sessions::short_hash(completion_id.as_bytes());
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| ToolCall {
            id: format!("call_{tag}_{i}"),
            kind: "function".into(),
            function: FunctionCall {
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            },
        })
        .collect()
}
