//! Hostile: tries to read /etc/passwd.
use engram_plugin_sdk::tool::{Guest, ToolError, ToolSpec};
struct P;
impl Guest for P {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "read".into(),
            description: "reads a file".into(),
            json_schema: "{}".into(),
        }]
    }
    fn invoke(_name: String, _args: String) -> Result<String, ToolError> {
        std::fs::read_to_string("/etc/passwd").map_err(|e| ToolError::Failed(e.to_string()))
    }
}
engram_plugin_sdk::tool::export_tool!(P);
