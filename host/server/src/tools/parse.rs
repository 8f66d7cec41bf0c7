//! Finding tool calls in model text: the Hermes/Qwen form
//! `<tool_call>{"name": "…", "arguments": {…}}</tool_call>` and the Shannon-Prime seed's text
//! protocol `<tool name="…">{…}</tool>`, plus the streaming hold-back that keeps a call's
//! text out of the content deltas.

use serde_json::Value;

/// Opens a Hermes/Qwen call.
pub const HERMES_OPEN: &str = "<tool_call>";
/// Closes a Hermes/Qwen call.
pub const HERMES_CLOSE: &str = "</tool_call>";
/// Opens a seed-protocol call (the name follows, then `">`).
pub const SEED_OPEN: &str = "<tool name=\"";
/// Closes a seed-protocol call.
pub const SEED_CLOSE: &str = "</tool>";

const OPENERS: [&str; 2] = [HERMES_OPEN, SEED_OPEN];

/// A call found in the text: function name and its arguments as compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    /// Function name.
    pub name: String,
    /// The arguments object, serialised.
    pub arguments: String,
}

/// What the model's answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAnswer {
    /// Text before the first call (the message `content`).
    pub content: String,
    /// The calls, in order; empty when the answer is plain text.
    pub calls: Vec<ParsedCall>,
}

/// Where the first call opener starts, if any.
pub fn first_opener(text: &str) -> Option<usize> {
    OPENERS.iter().filter_map(|o| text.find(o)).min()
}

/// How much of `text` can be streamed as content: everything before a call opener, minus a
/// suffix that could still grow into one.
pub fn streamable_len(text: &str) -> usize {
    if let Some(at) = first_opener(text) {
        return at;
    }
    let mut safe = text.len();
    for opener in OPENERS {
        for k in (1..opener.len().min(text.len() + 1)).rev() {
            if text.ends_with(&opener[..k]) {
                safe = safe.min(text.len() - k);
                break;
            }
        }
    }
    safe
}

/// Parse the model's answer against the offered tool names. Text that is not a well-formed
/// call of an offered tool stays content.
pub fn parse_answer(text: &str, offered: &[String]) -> ParsedAnswer {
    let plain = || ParsedAnswer {
        content: text.to_string(),
        calls: Vec::new(),
    };
    let Some(start) = first_opener(text) else {
        return plain();
    };
    let mut calls = Vec::new();
    let mut rest = &text[start..];
    while let Some((call, after)) = parse_one(rest) {
        if !offered.contains(&call.name) {
            return plain();
        }
        calls.push(call);
        rest = after.trim_start();
        if first_opener(rest) != Some(0) {
            break;
        }
    }
    if calls.is_empty() {
        return plain();
    }
    ParsedAnswer {
        content: text[..start].trim_end().to_string(),
        calls,
    }
}

/// One call at the start of `text`; returns it and the text after it.
fn parse_one(text: &str) -> Option<(ParsedCall, &str)> {
    if let Some(body) = text.strip_prefix(HERMES_OPEN) {
        let (value, after) = leading_json(body)?;
        let name = value.get("name")?.as_str()?.to_string();
        let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
            None => Value::Object(Default::default()),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)?,
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return None,
        };
        let after = after.trim_start();
        let after = after.strip_prefix(HERMES_CLOSE).unwrap_or(after);
        return Some((
            ParsedCall {
                name,
                arguments: arguments.to_string(),
            },
            after,
        ));
    }
    let body = text.strip_prefix(SEED_OPEN)?;
    let end = body.find("\">")?;
    let name = body[..end].to_string();
    if name.is_empty() || name.len() > 128 {
        return None;
    }
    let (arguments, after) = leading_json(&body[end + 2..])?;
    if !arguments.is_object() {
        return None;
    }
    let after = after.trim_start();
    let after = after.strip_prefix(SEED_CLOSE).unwrap_or(after);
    Some((
        ParsedCall {
            name,
            arguments: arguments.to_string(),
        },
        after,
    ))
}

/// A JSON value at the start of `text` (after whitespace) and the text after it.
fn leading_json(text: &str) -> Option<(Value, &str)> {
    let trimmed = text.trim_start();
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
    let value = stream.next()?.ok()?;
    let used = stream.byte_offset();
    Some((value, &trimmed[used..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> Vec<String> {
        vec!["get_weather".into(), "calc".into()]
    }

    #[test]
    fn hermes_and_seed_calls_are_parsed() {
        let a = parse_answer(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            &offered(),
        );
        assert_eq!(a.content, "Let me check.");
        assert_eq!(
            a.calls,
            vec![ParsedCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
        let a = parse_answer(
            r#"<tool name="calc">{"expression": "2+2"}</tool>"#,
            &offered(),
        );
        assert_eq!(a.content, "");
        assert_eq!(a.calls[0].name, "calc");
        assert_eq!(a.calls[0].arguments, r#"{"expression":"2+2"}"#);
        // A closer cut off by the stop string, arguments given as a JSON string, two calls.
        let a = parse_answer(
            "<tool_call>{\"name\":\"calc\",\"arguments\":\"{\\\"expression\\\":\\\"1\\\"}\"}",
            &offered(),
        );
        assert_eq!(a.calls[0].arguments, r#"{"expression":"1"}"#);
        let a = parse_answer(
            "<tool_call>{\"name\":\"calc\",\"arguments\":{}}</tool_call>\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{}}</tool_call>",
            &offered(),
        );
        assert_eq!(a.calls.len(), 2);
    }

    #[test]
    fn malformed_or_unknown_calls_stay_text() {
        for text in [
            "plain answer",
            "<tool_call>{\"name\": \"calc\", \"arguments\": {\"x\": }</tool_call>",
            "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
            "<tool name=\"calc\">[1, 2]</tool>",
            "<tool name=\"calc\">not json</tool>",
        ] {
            let a = parse_answer(text, &offered());
            assert!(a.calls.is_empty(), "{text}");
            assert_eq!(a.content, text);
        }
    }

    #[test]
    fn streaming_holds_back_possible_openers() {
        assert_eq!(streamable_len("Hello"), 5);
        assert_eq!(streamable_len("Hello <tool"), 6);
        assert_eq!(streamable_len("Hello <tool_c"), 6);
        assert_eq!(streamable_len("Hello <"), 6);
        assert_eq!(streamable_len("a <b> c"), 7);
        assert_eq!(streamable_len("x<tool_call>{\"name\""), 1);
        assert_eq!(streamable_len("x<tool name=\"calc\">{"), 1);
    }
}
