//! Host-side bindings generated from `wit/` for each plugin world.
//!
//! The `agency` world imports every shared interface, so its generated types
//! are the canonical ones; the other worlds reuse them through `with`.

#![allow(missing_docs)]

/// Bindings of the `agency` world (and the canonical shared types).
pub mod agency {
    wasmtime::component::bindgen!({
        world: "agency",
        path: "../../wit",
        additional_derives: [PartialEq],
    });
}

/// Bindings of the `judge` world.
pub mod judge {
    wasmtime::component::bindgen!({
        world: "judge",
        path: "../../wit",
        with: {
            "engram:plugin/types": crate::bindings::agency::engram::plugin::types,
            "engram:plugin/log": crate::bindings::agency::engram::plugin::log,
        },
    });
}

/// Bindings of the `recall-policy` world.
pub mod recall_policy {
    wasmtime::component::bindgen!({
        world: "recall-policy",
        path: "../../wit",
        with: {
            "engram:plugin/types": crate::bindings::agency::engram::plugin::types,
            "engram:plugin/log": crate::bindings::agency::engram::plugin::log,
        },
    });
}

/// Bindings of the `capture` world.
pub mod capture {
    wasmtime::component::bindgen!({
        world: "capture",
        path: "../../wit",
        with: {
            "engram:plugin/types": crate::bindings::agency::engram::plugin::types,
            "engram:plugin/log": crate::bindings::agency::engram::plugin::log,
            "engram:plugin/clock": crate::bindings::agency::engram::plugin::clock,
            "engram:plugin/llm": crate::bindings::agency::engram::plugin::llm,
        },
    });
}

/// Bindings of the `tool` world.
pub mod tool {
    wasmtime::component::bindgen!({
        world: "tool",
        path: "../../wit",
        with: {
            "engram:plugin/types": crate::bindings::agency::engram::plugin::types,
            "engram:plugin/log": crate::bindings::agency::engram::plugin::log,
            "engram:plugin/clock": crate::bindings::agency::engram::plugin::clock,
        },
    });
}

pub use agency::engram::plugin::types;
