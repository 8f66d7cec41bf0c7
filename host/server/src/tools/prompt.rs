//! Showing tools to the model. A chat template that knows about tools (it mentions `tools`,
//! as Qwen2.5's does) is rendered with minijinja the way `transformers` renders it: the
//! OpenAI `tools` list, assistant `tool_calls` with their arguments as objects, and `tool`
//! messages. A template that does not (SmolLM2's) gets the Shannon-Prime seed's text
//! protocol instead: a system message describing the tools and the call syntax
//! `<tool name="…">{json}</tool>`, earlier calls written back in that syntax and tool results
//! as `<tool_result name="…">…</tool_result>` user messages.

use engram_engine::{ChatMessage, ChatTemplate, Tokenizer};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai::{Message, Role, ToolSpec};

/// How calls are written for the loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The template's own tool support; calls are Hermes/Qwen `<tool_call>{…}</tool_call>`.
    Template,
    /// The seed's text protocol `<tool name="…">{…}</tool>`, taught by a system message.
    Text,
}

impl Protocol {
    /// The protocol the model's chat template supports.
    pub fn for_template(source: &str) -> Protocol {
        if source.contains("tools") {
            Protocol::Template
        } else {
            Protocol::Text
        }
    }
}

/// Whether a conversation carries tool traffic (calls or results) that needs this module's
/// rendering even when no tools are offered now.
pub fn has_tool_traffic(messages: &[Message]) -> bool {
    messages
        .iter()
        .any(|m| m.role == Role::Tool || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()))
}

/// Render `messages` (and `tools`, when offered) into the prompt text.
pub fn render(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[Message],
    tools: Option<&[ToolSpec]>,
) -> Result<String, ApiError> {
    match Protocol::for_template(template.source()) {
        Protocol::Template => render_with_template(template, tokenizer, messages, tools),
        Protocol::Text => {
            let turns = text_protocol_messages(messages, tools);
            template
                .render(&turns, true)
                .map_err(|err| ApiError::invalid(Some("messages".into()), err.to_string()))
        }
    }
}

fn raise_exception(msg: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

fn render_with_template(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[Message],
    tools: Option<&[ToolSpec]>,
) -> Result<String, ApiError> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    let bad = |err: minijinja::Error| {
        ApiError::invalid(
            Some("messages".into()),
            format!("cannot render the chat template with tools: {err:#}"),
        )
    };
    let compiled = env.template_from_str(template.source()).map_err(bad)?;
    let token = |id: Option<u32>| {
        id.and_then(|i| tokenizer.token_text(i))
            .unwrap_or("")
            .to_string()
    };
    let messages: Vec<Value> = messages.iter().map(template_message).collect();
    let tools: Option<Vec<Value>> = tools.map(|tools| {
        tools
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or_default())
            .collect()
    });
    compiled
        .render(minijinja::context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => token(tokenizer.bos()),
            eos_token => token(tokenizer.eos()),
        })
        .map_err(bad)
}

/// A message as `transformers` hands it to templates (tool-call arguments as objects).
fn template_message(message: &Message) -> Value {
    let mut value = json!({
        "role": message.role.template_name(),
        "content": message.content.clone().unwrap_or_default(),
    });
    if let Some(calls) = &message.tool_calls {
        value["tool_calls"] = calls
            .iter()
            .map(|call| {
                let arguments = serde_json::from_str::<Value>(&call.function.arguments)
                    .unwrap_or_else(|_| Value::String(call.function.arguments.clone()));
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": arguments},
                })
            })
            .collect();
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    if let Some(name) = &message.name {
        value["name"] = json!(name);
    }
    value
}

/// The system text teaching the seed's protocol for `tools`.
pub fn text_protocol_instructions(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "You can call tools. To call one, reply with only this line:\n\
         <tool name=\"TOOL_NAME\">{\"argument\": \"value\"}</tool>\n\
         where the JSON object holds the tool's arguments. The result comes back as \
         <tool_result name=\"TOOL_NAME\">…</tool_result>. When no tool is needed, answer \
         normally.\n\nTools:",
    );
    for tool in tools {
        let f = &tool.function;
        out.push_str(&format!("\n- {}", f.name));
        if let Some(description) = f.description.as_deref().filter(|d| !d.is_empty()) {
            out.push_str(&format!(": {description}"));
        }
        if let Some(schema) = &f.parameters {
            out.push_str(&format!("\n  arguments (JSON schema): {schema}"));
        }
    }
    out
}

/// The conversation rewritten for the text protocol (plain role/content turns).
fn text_protocol_messages(messages: &[Message], tools: Option<&[ToolSpec]>) -> Vec<ChatMessage> {
    let mut names = std::collections::HashMap::new();
    let mut turns = Vec::with_capacity(messages.len() + 1);
    for message in messages {
        let content = message.content.clone().unwrap_or_default();
        match message.role {
            Role::Assistant => {
                let mut text = content;
                for call in message.tool_calls.iter().flatten() {
                    names.insert(call.id.clone(), call.function.name.clone());
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "<tool name=\"{}\">{}</tool>",
                        call.function.name, call.function.arguments
                    ));
                }
                turns.push(ChatMessage::new("assistant", text));
            }
            Role::Tool => {
                let name = message
                    .tool_call_id
                    .as_ref()
                    .and_then(|id| names.get(id).cloned())
                    .or_else(|| message.name.clone())
                    .unwrap_or_else(|| "tool".into());
                turns.push(ChatMessage::new(
                    "user",
                    format!("<tool_result name=\"{name}\">{content}</tool_result>"),
                ));
            }
            role => turns.push(ChatMessage::new(role.template_name(), content)),
        }
    }
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        let instructions = text_protocol_instructions(tools);
        match turns.first_mut() {
            Some(first) if first.role == "system" => {
                first.content = format!("{}\n\n{instructions}", first.content);
            }
            _ => turns.insert(0, ChatMessage::new("system", instructions)),
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{FunctionCall, FunctionSpec, ToolCall};

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            kind: "function".into(),
            function: FunctionSpec {
                name: name.into(),
                description: Some("Get the weather".into()),
                parameters: Some(
                    json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                ),
            },
        }
    }

    fn message(role: Role, content: Option<&str>) -> Message {
        Message {
            role,
            content: content.map(str::to_string),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }

    const QWEN_LIKE: &str = "{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif %}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
    const PLAIN: &str = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

    fn conversation() -> Vec<Message> {
        let mut call = message(Role::Assistant, None);
        call.tool_calls = Some(vec![ToolCall {
            id: "call_1".into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
        }]);
        let mut result = message(Role::Tool, Some("18 C, sunny"));
        result.tool_call_id = Some("call_1".into());
        vec![message(Role::User, Some("Weather in Paris?")), call, result]
    }

    fn tokenizer() -> Tokenizer {
        Tokenizer::new(
            vec!["a".into()],
            vec![engram_engine::tokenizer::TokenType::Normal],
            &[],
            engram_engine::tokenizer::PreTokenizer::Gpt2,
            None,
            None,
            None,
            false,
        )
        .expect("tiny tokenizer")
    }

    #[test]
    fn template_with_tool_support_gets_tools_calls_and_results() {
        let template = ChatTemplate::with_tokens(QWEN_LIKE, String::new(), String::new()).unwrap();
        let text = render(
            &template,
            &tokenizer(),
            &conversation(),
            Some(&[spec("get_weather")]),
        )
        .unwrap();
        assert!(text.contains("<tools>{"), "{text}");
        assert!(text.contains("\"name\":\"get_weather\""), "{text}");
        assert!(
            text.contains(
                r#"<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>"#
            ),
            "{text}"
        );
        assert!(text.contains("[tool]18 C, sunny"), "{text}");
        assert!(text.ends_with("[assistant]"));
    }

    #[test]
    fn template_without_tool_support_gets_the_text_protocol() {
        let template = ChatTemplate::with_tokens(PLAIN, String::new(), String::new()).unwrap();
        let text = render(
            &template,
            &tokenizer(),
            &conversation(),
            Some(&[spec("get_weather")]),
        )
        .unwrap();
        assert!(text.starts_with("[system]You can call tools."), "{text}");
        assert!(text.contains("- get_weather: Get the weather"), "{text}");
        assert!(
            text.contains(r#"[assistant]<tool name="get_weather">{"city":"Paris"}</tool>"#),
            "{text}"
        );
        assert!(
            text.contains(r#"[user]<tool_result name="get_weather">18 C, sunny</tool_result>"#),
            "{text}"
        );
        // No tools offered now: the history is still rewritten, but no instructions appear.
        let text = render(&template, &tokenizer(), &conversation(), None).unwrap();
        assert!(!text.contains("You can call tools"), "{text}");
        assert!(text.contains("<tool_result"), "{text}");
    }
}
