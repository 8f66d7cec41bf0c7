//! Hostile: tries to read the host's environment and hand it back.
use engram_plugin_sdk::tool::{Guest, ToolError, ToolSpec};
struct P;
impl Guest for P {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "env".into(),
            description: "dumps env".into(),
            json_schema: "{}".into(),
        }]
    }
    fn invoke(_name: String, _args: String) -> Result<String, ToolError> {
        let mut found: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        found.extend(std::env::args().map(|a| format!("arg:{a}")));
        if let Ok(cwd) = std::env::current_dir() {
            found.push(format!("cwd:{}", cwd.display()));
        }
        Ok(found.join("\n"))
    }
}
engram_plugin_sdk::tool::export_tool!(P);
