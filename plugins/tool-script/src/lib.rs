//! `tool-script`: runs untrusted [Rhai](https://rhai.rs) scripts inside the plugin sandbox.
//!
//! The interpreter is compiled into the component, so a script can only do what the
//! component can: no files, network, environment or clock (the `tool` world grants none),
//! and no Rhai modules. Two layers of limits stop hostile scripts:
//!
//! - the interpreter's own: operations per run ([`MAX_OPERATIONS`]), call depth, expression
//!   depth, string/array/map sizes, script length — a script that hits one gets a
//!   `failed` tool error naming the limit;
//! - the host's: the epoch deadline (call timeout), fuel when metered, and the linear-memory
//!   cap (`StoreLimits`) — what the interpreter cannot see (say, ten thousand strings each
//!   within the size limit) is stopped there, and the host falls back for that call.
//!
//! Arguments: `{"code": "<rhai script>", "input": <optional JSON object>}`; `input` is bound
//! to the variable `input`. The result text is whatever the script printed (one line per
//! `print`) followed by the value of its last expression.

use engram_plugin_sdk::tool::{Guest, ToolError, ToolSpec};
use rhai::{Dynamic, Engine, EvalAltResult, Scope};
use std::cell::RefCell;
use std::rc::Rc;

/// Interpreter operations one script may perform (loops, calls, expressions).
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Nested function calls (recursion) a script may make.
pub const MAX_CALL_LEVELS: usize = 32;
/// Longest string a script may build, in bytes.
pub const MAX_STRING_BYTES: usize = 64 << 10;
/// Most elements in one array or object map.
pub const MAX_COLLECTION: usize = 10_000;
/// Longest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 16 << 10;
/// Printed output kept, in bytes (the rest is dropped with a marker).
pub const MAX_PRINTED_BYTES: usize = 16 << 10;

const SCHEMA: &str = r#"{"type":"object","properties":{"code":{"type":"string","description":"A Rhai script; the value of its last expression is the result"},"input":{"type":"object","description":"Optional data, bound to the variable `input`"}},"required":["code"],"additionalProperties":false}"#;

/// An engine with every limit set and `print`/`debug` captured into `printed`.
fn engine(printed: Rc<RefCell<String>>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING_BYTES)
        .set_max_array_size(MAX_COLLECTION)
        .set_max_map_size(MAX_COLLECTION);
    let sink = printed.clone();
    engine.on_print(move |text| append(&sink, text));
    engine.on_debug(move |text, _, _| append(&printed, text));
    engine
}

fn append(printed: &RefCell<String>, text: &str) {
    let mut out = printed.borrow_mut();
    if out.len() >= MAX_PRINTED_BYTES {
        return;
    }
    let room = MAX_PRINTED_BYTES - out.len();
    let mut cut = text.len().min(room);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&text[..cut]);
    out.push_str(if cut < text.len() {
        "…(output truncated)\n"
    } else {
        "\n"
    });
}

/// Say which limit (or which error) stopped a script.
fn describe_error(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "script stopped: it exceeded the limit of {MAX_OPERATIONS} operations (infinite loop?)"
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "script stopped: it exceeded the limit of {MAX_CALL_LEVELS} nested calls (runaway recursion?)"
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "script stopped: {what} exceeded its size limit ({MAX_STRING_BYTES} bytes per string, \
             {MAX_COLLECTION} elements per array or map)"
        ),
        other => format!("script error: {other}"),
    }
}

/// Run `code` with `input` bound (when given); the printed lines then the result.
pub fn run(code: &str, input: Option<&serde_json::Value>) -> Result<String, String> {
    if code.len() > MAX_SCRIPT_BYTES {
        return Err(format!(
            "script of {} bytes exceeds the {MAX_SCRIPT_BYTES}-byte limit",
            code.len()
        ));
    }
    let printed = Rc::new(RefCell::new(String::new()));
    let engine = engine(printed.clone());
    let mut scope = Scope::new();
    if let Some(input) = input {
        let map = engine
            .parse_json(input.to_string(), true)
            .map_err(|e| describe_error(&e))?;
        scope.push("input", map);
    }
    let value: Dynamic = engine
        .eval_with_scope(&mut scope, code)
        .map_err(|e| describe_error(&e))?;
    let mut out = printed.borrow().clone();
    if !value.is_unit() || out.is_empty() {
        out.push_str(&value.to_string());
    }
    Ok(out.trim_end_matches('\n').to_string())
}

struct Script;

impl Guest for Script {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "script".into(),
            description:
                "Run a short Rhai script (Rust-like syntax: let, if, for, fn, arrays, maps) \
                          and return what it printed and the value of its last expression."
                    .into(),
            json_schema: SCHEMA.into(),
        }]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        if name != "script" {
            return Err(ToolError::UnknownTool(name));
        }
        let args: serde_json::Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let code = args.get("code").and_then(|c| c.as_str()).ok_or_else(|| {
            ToolError::InvalidArguments("expected {\"code\": \"<rhai script>\"}".into())
        })?;
        let input = match args.get("input") {
            None | Some(serde_json::Value::Null) => None,
            Some(value @ serde_json::Value::Object(_)) => Some(value),
            Some(_) => {
                return Err(ToolError::InvalidArguments(
                    "`input` must be a JSON object".into(),
                ))
            }
        };
        run(code, input).map_err(ToolError::Failed)
    }
}

engram_plugin_sdk::tool::export_tool!(Script);
