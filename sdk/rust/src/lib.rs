//! The Rust guest SDK for Engram plugins.
//!
//! A plugin is one type implementing the `Guest` trait of its kind plus one
//! export macro:
//!
//! ```ignore
//! use engram_plugin_sdk::judge::{Guest, Candidate, Verdict};
//! struct MyJudge;
//! impl Guest for MyJudge {
//!     fn judge(query: String, candidates: Vec<Candidate>) -> Vec<Verdict> { /* … */ }
//! }
//! engram_plugin_sdk::judge::export_judge!(MyJudge);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the resulting
//! `.wasm` is a component the host loads directly. Each world module re-exports
//! the shared record types and the host imports (`log`, `clock`, `llm`, `memory`)
//! that world may use.

/// The WIT package version this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// Bindings for the `judge` world (`engram:plugin/judging`).
pub mod judge {
    wit_bindgen::generate!({
        world: "judge",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_judge",
        default_bindings_module: "engram_plugin_sdk::judge",
    });
    pub use self::engram::plugin::log;
    pub use self::engram::plugin::types::{Candidate, Features, Verdict};
    pub use self::exports::engram::plugin::judging::Guest;
}

/// Bindings for the `recall-policy` world (`engram:plugin/ranking`).
pub mod recall_policy {
    wit_bindgen::generate!({
        world: "recall-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_recall_policy",
        default_bindings_module: "engram_plugin_sdk::recall_policy",
    });
    pub use self::engram::plugin::log;
    pub use self::engram::plugin::types::{Candidate, Features, Ranked};
    pub use self::exports::engram::plugin::ranking::Guest;
}

/// Bindings for the `capture` world (`engram:plugin/capturing`).
pub mod capture {
    wit_bindgen::generate!({
        world: "capture",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_capture",
        default_bindings_module: "engram_plugin_sdk::capture",
    });
    pub use self::engram::plugin::types::Fact;
    pub use self::engram::plugin::{clock, llm, log};
    pub use self::exports::engram::plugin::capturing::Guest;
}

/// Bindings for the `tool` world (`engram:plugin/tools`).
pub mod tool {
    wit_bindgen::generate!({
        world: "tool",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_tool",
        default_bindings_module: "engram_plugin_sdk::tool",
    });
    pub use self::engram::plugin::types::{ToolError, ToolSpec};
    pub use self::engram::plugin::{clock, log};
    pub use self::exports::engram::plugin::tools::Guest;
}

/// Bindings for the `agency` world (`engram:plugin/maintenance`).
pub mod agency {
    wit_bindgen::generate!({
        world: "agency",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_agency",
        default_bindings_module: "engram_plugin_sdk::agency",
    });
    pub use self::engram::plugin::types::{Fact, MemoryItem, RoundReport};
    pub use self::engram::plugin::{clock, llm, log, memory};
    pub use self::exports::engram::plugin::maintenance::Guest;
}
