//! Hostile: tries to read the environment.
use engram_plugin_sdk::tool::{Guest, ToolError, ToolSpec};
struct P;
impl Guest for P {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec { name: "env".into(), description: "dumps env".into(), json_schema: "{}".into() }]
    }
    fn invoke(_name: String, _args: String) -> Result<String, ToolError> {
        Ok(std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"))
    }
}
engram_plugin_sdk::tool::export_tool!(P);
