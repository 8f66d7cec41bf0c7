//! The OpenAI-compatible chat completion protocol: request parsing with field-naming errors,
//! and the response / streaming chunk shapes.
//!
//! Unknown fields are ignored (clients send many we do not use); malformed JSON and wrong
//! types are refused with an error naming the offending field.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// A chat message as OpenAI clients send it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: Role,
    /// The text; `null` is allowed for assistant messages that only carry tool calls.
    #[serde(default, deserialize_with = "content::deserialize")]
    pub content: Option<String>,
    /// Tool calls an assistant message made (echoed back by clients in later turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For `tool` messages: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message of `role` carrying `text` and nothing else (no tool calls, id or name).
    pub fn new(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: Some(text.into()),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

/// A message author.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the assistant.
    System,
    /// OpenAI's newer name for `system`.
    Developer,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role's name as chat templates expect it (`developer` maps to `system`).
    pub fn template_name(self) -> &'static str {
        match self {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

mod content {
    //! `content` is either a string or an array of parts (`{"type":"text","text":…}`); we
    //! accept both and join text parts, refusing non-text parts with a clear message.
    use serde::{de::Error, Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
    }

    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        text: Option<String>,
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Option::<Content>::deserialize(d)? {
            None => Ok(None),
            Some(Content::Text(text)) => Ok(Some(text)),
            Some(Content::Parts(parts)) => {
                let mut joined = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(text)) => joined.push_str(&text),
                        (kind, _) => {
                            return Err(D::Error::custom(format!(
                                "content part of type `{kind}` is not supported (only `text`)"
                            )))
                        }
                    }
                }
                Ok(Some(joined))
            }
        }
    }
}

/// A tool the client offers (`{"type":"function","function":{…}}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ToolSpec {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's name, description and JSON-schema parameters.
    pub function: FunctionSpec,
}

/// A function's description for the model.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct FunctionSpec {
    /// Name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

/// A tool call in an assistant answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ToolCall {
    /// Identifier the `tool` message answering it refers to.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which function, with what arguments.
    pub function: FunctionCall,
}

/// The function part of a tool call.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (as OpenAI sends them).
    pub arguments: String,
}

/// `tool_choice`: `"none"`, `"auto"`, `"required"` or a named function.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none` / `auto` / `required`.
    Mode(ToolChoiceMode),
    /// `{"type":"function","function":{"name":…}}`.
    Named {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function to call.
        function: NamedFunction,
    },
}

/// The string forms of `tool_choice`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// The model must call a tool.
    Required,
}

/// A function named by `tool_choice`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NamedFunction {
    /// Function name.
    pub name: String,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct StreamOptions {
    /// Send a final chunk carrying `usage` (with `choices: []`) before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Engram's memory knobs, accepted on both endpoints.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
pub struct MemoryKnobs {
    /// Recall memories into the prompt.
    #[serde(default)]
    pub recall: bool,
    /// Capture facts from the user's text after the answer.
    #[serde(default)]
    pub capture: bool,
    /// How many memories to recall at most.
    #[serde(default)]
    pub k: Option<u32>,
    /// Let the heartbeat consolidate this conversation (facts → cells, transcript → the
    /// long tier) once it is idle.
    #[serde(default)]
    pub consolidate: bool,
    /// No-replay mode: the model sees only the system prompt, the rendered memory state and
    /// the latest user text, never the transcript; the report gives the token cost.
    #[serde(default)]
    pub no_replay: bool,
    /// Value anchoring: once the answer has begun the value of a fact in the memory state,
    /// it continues that value exactly (`engram_engine::anchor`). On unless `false`.
    #[serde(default)]
    pub anchor: Option<bool>,
    /// Answer opening: a question to the assistant about itself ("what can you do?") gets a
    /// reply that opens with the first words of the capability fact recalled for it
    /// (`crate::capabilities::opening`), so the model goes on from Engram's own statement;
    /// a question about a fact of the user's that it names opens in the second person
    /// (`crate::memory::answer_opening`: "Your server's"), an abstention with its first
    /// words ("I have no"), a plain statement whose facts were captured with "Noted."
    /// (`crate::memory::ACKNOWLEDGEMENT`), and a "forget …" turn with "I have forgotten"
    /// (the answer names what was erased: "I have forgotten your car's color."). On unless
    /// `false`.
    #[serde(default)]
    pub opening: Option<bool>,
    /// Abstention: a question about a fact of the user's that neither memory nor the
    /// conversation holds ("What is my server's IP?" when it was never told) is answered
    /// that memory has none (`crate::memory::MemoryServices::abstention`), instead of a
    /// made-up value. On unless `false`.
    #[serde(default)]
    pub abstain: Option<bool>,
    /// Direct replies: a turn whose whole answer memory determines — a plain statement whose
    /// facts were captured ("Noted."), a "forget …" turn ("I have forgotten your car's
    /// color."), an abstention ("I have no memory of your car's color.") — is answered by
    /// the server without running the model: no prompt is sent (`usage.prompt_tokens` 0)
    /// and the reply is those words exactly. Needs `opening` (off: the model is run with the
    /// words as its opening, as before the knob existed). On unless `false`.
    #[serde(default)]
    pub direct: Option<bool>,
}

/// `POST /v1/chat/completions` body (and the native `/v1/chat`, which adds `memory`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ChatRequest {
    /// Model name (informational: Engram serves the model it loaded).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Stream SSE chunks.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options (an object; the array form serde would also take is refused).
    #[serde(default, deserialize_with = "object_only")]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// OpenAI's newer name for `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature (0 = greedy).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Sampler seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Option<Vec<ToolSpec>>,
    /// Whether/which tool to call.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Number of choices; only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// Engram extension: the session this conversation belongs to.
    #[serde(default)]
    pub session: Option<String>,
    /// Engram extension: memory knobs.
    #[serde(default)]
    pub memory: Option<MemoryKnobs>,
    /// Engram extension (native `/v1/chat`): offer and run the server's tool plugins.
    #[serde(default, deserialize_with = "object_only")]
    pub server_tools: Option<crate::tools::server::ServerToolsKnob>,
    /// Engram extension: run this turn in exact mode (`true`: every operator in integer
    /// arithmetic, the logits a pure function of the model file and the tokens) or on the
    /// float path (`false`); absent: the server's mode (`engram serve --exact` or not). Exact
    /// and float turns keep separate KV caches, so a session switched to the other mode
    /// prefills its history once in that mode.
    #[serde(default)]
    pub exact: Option<bool>,
}

/// Deserialize an optional struct only from a JSON object (or `null`): serde's derive also
/// accepts a struct as an array of its fields, which clients never mean.
fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            // The map access keeps the caller's field-path tracking, so errors inside name
            // the inner field (`stream_options.include_usage`).
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(ObjectOnly(std::marker::PhantomData))
}

/// Whether `name` is a valid function name (OpenAI's rule: `[a-zA-Z0-9_-]{1,64}`).
pub fn valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Limits a request is validated against.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest `max_tokens` accepted.
    pub max_tokens: u32,
    /// Most messages in one request.
    pub max_messages: usize,
}

impl ChatRequest {
    /// Parse a request body, naming the offending field on error.
    pub fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
        let text = std::str::from_utf8(body).map_err(|err| {
            ApiError::invalid(
                None,
                format!(
                    "request body is not valid UTF-8 (invalid byte at offset {})",
                    err.valid_up_to()
                ),
            )
        })?;
        let mut de = serde_json::Deserializer::from_str(text);
        let request: ChatRequest = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            let param = (path != ".").then_some(path);
            let inner = err.into_inner();
            let message = match &param {
                Some(param) => format!("invalid field `{param}`: {inner}"),
                None => format!("request body is not valid JSON: {inner}"),
            };
            ApiError::invalid(param, message)
        })?;
        de.end()
            .map_err(|err| ApiError::invalid(None, format!("trailing data after JSON: {err}")))?;
        Ok(request)
    }

    /// Check values serde cannot: ranges, counts, and the roles' order.
    pub fn validate(&self, limits: RequestLimits) -> Result<(), ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                Some("messages".into()),
                "`messages` must hold at least one message".into(),
            ));
        }
        if self.messages.len() > limits.max_messages {
            return Err(ApiError::invalid(
                Some("messages".into()),
                format!(
                    "`messages` holds {} messages; at most {} are accepted",
                    self.messages.len(),
                    limits.max_messages
                ),
            ));
        }
        for (i, message) in self.messages.iter().enumerate() {
            let needs_text = !(message.role == Role::Assistant && message.tool_calls.is_some());
            if needs_text && message.content.is_none() {
                return Err(ApiError::invalid(
                    Some(format!("messages[{i}].content")),
                    format!("messages[{i}] has no `content`"),
                ));
            }
        }
        if let Some(max) = self.max_tokens() {
            if max == 0 || max > limits.max_tokens {
                return Err(ApiError::invalid(
                    Some("max_tokens".into()),
                    format!(
                        "`max_tokens` is {max}; it must be between 1 and {}",
                        limits.max_tokens
                    ),
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) || t.is_nan() {
                return Err(ApiError::invalid(
                    Some("temperature".into()),
                    format!("`temperature` is {t}; it must be between 0 and 2"),
                ));
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ApiError::invalid(
                    Some("top_p".into()),
                    format!("`top_p` is {p}; it must be in (0, 1]"),
                ));
            }
        }
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::invalid(
                    Some("n".into()),
                    format!("`n` is {n}; only one choice per request is supported"),
                ));
            }
        }
        if self.stop_strings().len() > 4 {
            return Err(ApiError::invalid(
                Some("stop".into()),
                "`stop` holds more than 4 strings".into(),
            ));
        }
        if let Some(tools) = &self.tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.kind != "function" {
                    return Err(ApiError::invalid(
                        Some(format!("tools[{i}].type")),
                        format!(
                            "tools[{i}].type is `{}`; only `function` is supported",
                            tool.kind
                        ),
                    ));
                }
                if !valid_function_name(&tool.function.name) {
                    return Err(ApiError::invalid(
                        Some(format!("tools[{i}].function.name")),
                        format!(
                            "tools[{i}].function.name `{}` must be 1 to 64 of a-z, A-Z, 0-9, _ and -",
                            tool.function.name
                        ),
                    ));
                }
                if let Some(parameters) = &tool.function.parameters {
                    if !parameters.is_object() {
                        return Err(ApiError::invalid(
                            Some(format!("tools[{i}].function.parameters")),
                            format!("tools[{i}].function.parameters must be a JSON schema object"),
                        ));
                    }
                }
            }
        }
        let server_tools = self.server_tools.is_some_and(|knob| knob.enabled);
        let no_tools = self.tools.as_ref().is_none_or(|tools| tools.is_empty());
        if no_tools
            && !server_tools
            && matches!(
                self.tool_choice,
                Some(ToolChoice::Mode(ToolChoiceMode::Required)) | Some(ToolChoice::Named { .. })
            )
        {
            return Err(ApiError::invalid(
                Some("tool_choice".into()),
                "`tool_choice` asks for a tool call, but `tools` offers none".into(),
            ));
        }
        for (i, message) in self.messages.iter().enumerate() {
            if message.role == Role::Tool && message.tool_call_id.is_none() {
                return Err(ApiError::invalid(
                    Some(format!("messages[{i}].tool_call_id")),
                    format!("messages[{i}] has role `tool` but no `tool_call_id`"),
                ));
            }
        }
        if let Some(ToolChoice::Named { function, .. }) =
            self.tool_choice.as_ref().filter(|_| !server_tools)
        {
            let offered = self
                .tools
                .iter()
                .flatten()
                .any(|tool| tool.function.name == function.name);
            if !offered {
                return Err(ApiError::invalid(
                    Some("tool_choice".into()),
                    format!(
                        "`tool_choice` names `{}`, which is not in `tools`",
                        function.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `max_completion_tokens` or `max_tokens`, whichever is given.
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The stop strings as a list.
    pub fn stop_strings(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(list)) => list.clone(),
        }
    }
}

/// Token accounting in responses.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// Tokens of the prompt (the whole rendered conversation).
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Sum of both.
    pub total_tokens: u32,
    /// Details of the prompt tokens.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// How much of the prompt came from the session's KV cache.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV state was reused instead of prefilled.
    pub cached_tokens: u32,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS or a stop string.
    Stop,
    /// `max_tokens` reached (or the context filled).
    Length,
    /// The model called a tool.
    ToolCalls,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        max_tokens: 4096,
        max_messages: 512,
    };

    #[test]
    fn parses_a_minimal_request_and_ignores_unknown_fields() {
        let body = br#"{"model":"x","messages":[{"role":"user","content":"hi"}],"frequency_penalty":0.5,"logit_bias":{}}"#;
        let request = ChatRequest::parse(body).unwrap();
        assert_eq!(request.messages[0].content.as_deref(), Some("hi"));
        request.validate(LIMITS).unwrap();
    }

    #[test]
    fn content_parts_are_joined() {
        let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        let request = ChatRequest::parse(body).unwrap();
        assert_eq!(request.messages[0].content.as_deref(), Some("ab"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let body = br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}"#;
        let err = ChatRequest::parse(body).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
        let body = br#"{"messages":[{"role":"wizard","content":"hi"}]}"#;
        let err = ChatRequest::parse(body).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn stream_options_must_be_an_object() {
        let ok = br#"{"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#;
        assert!(
            ChatRequest::parse(ok)
                .unwrap()
                .stream_options
                .unwrap()
                .include_usage
        );
        let null = br#"{"messages":[{"role":"user","content":"hi"}],"stream_options":null}"#;
        assert!(ChatRequest::parse(null).unwrap().stream_options.is_none());
        let nested = br#"{"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":"yes"}}"#;
        assert_eq!(
            ChatRequest::parse(nested).unwrap_err().param.as_deref(),
            Some("stream_options.include_usage")
        );
        for bad in ["[true]", "true", "\"x\""] {
            let body = format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}}],"stream_options":{bad}}}"#
            );
            let err = ChatRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("stream_options"), "{bad}");
        }
    }

    #[test]
    fn tool_fields_are_validated() {
        let base = |tools: &str, choice: &str| {
            let body = format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}}],"tools":{tools},"tool_choice":{choice}}}"#
            );
            ChatRequest::parse(body.as_bytes()).and_then(|r| r.validate(LIMITS))
        };
        let weather = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#;
        assert!(base(weather, r#""required""#).is_ok());
        assert!(base(
            weather,
            r#"{"type":"function","function":{"name":"get_weather"}}"#
        )
        .is_ok());
        let param = |r: Result<(), ApiError>| r.unwrap_err().param;
        assert_eq!(
            param(base(
                weather,
                r#"{"type":"function","function":{"name":"other"}}"#
            ))
            .as_deref(),
            Some("tool_choice")
        );
        assert_eq!(
            param(base("[]", r#""required""#)).as_deref(),
            Some("tool_choice")
        );
        assert_eq!(
            param(base(
                r#"[{"type":"function","function":{"name":"bad name\""}}]"#,
                r#""auto""#
            ))
            .as_deref(),
            Some("tools[0].function.name")
        );
        let body = br#"{"messages":[{"role":"tool","content":"42"}]}"#;
        assert_eq!(
            ChatRequest::parse(body)
                .unwrap()
                .validate(LIMITS)
                .unwrap_err()
                .param
                .as_deref(),
            Some("messages[0].tool_call_id")
        );
    }

    #[test]
    fn malformed_json_and_invalid_utf8_are_refused() {
        assert!(ChatRequest::parse(b"{\"messages\": [").is_err());
        assert!(ChatRequest::parse(b"\xff\xfe").is_err());
        assert!(ChatRequest::parse(br#"{"messages":[]} trailing"#).is_err());
    }

    #[test]
    fn validation_catches_out_of_range_values() {
        let ok = ChatRequest::parse(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let mut bad = ok.clone();
        bad.max_tokens = Some(1_000_000);
        assert_eq!(
            bad.validate(LIMITS).unwrap_err().param.as_deref(),
            Some("max_tokens")
        );
        let mut bad = ok.clone();
        bad.temperature = Some(-1.0);
        assert_eq!(
            bad.validate(LIMITS).unwrap_err().param.as_deref(),
            Some("temperature")
        );
        let mut bad = ok.clone();
        bad.messages.clear();
        assert_eq!(
            bad.validate(LIMITS).unwrap_err().param.as_deref(),
            Some("messages")
        );
        let mut bad = ok;
        bad.n = Some(3);
        assert_eq!(
            bad.validate(LIMITS).unwrap_err().param.as_deref(),
            Some("n")
        );
    }
}
