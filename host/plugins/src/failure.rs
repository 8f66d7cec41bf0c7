//! Why a plugin call failed, classified by root cause.

use crate::state::MemoryLimitExceeded;
use std::fmt;
use wasmtime::{Trap, WasmBacktrace};

/// The class of a plugin failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The call ran past its deadline (epoch interruption).
    Timeout,
    /// The call used up its fuel budget.
    OutOfFuel,
    /// The plugin tried to grow its memory past the limit.
    MemoryLimit,
    /// The wasm stack overflowed (runaway recursion).
    StackOverflow,
    /// The plugin wrote more than the cap to stdout/stderr.
    OutputLimit,
    /// The plugin called an import it was not granted.
    CapabilityDenied,
    /// Any other trap: panic/abort (`unreachable`), bad memory access, …
    Trap,
    /// The plugin answered, but the answer is unusable (wrong length, too big,
    /// out-of-range values).
    BadOutput,
    /// The plugin could not be instantiated (pool exhausted, start trap).
    Instantiation,
    /// The slot is quarantined or backing off; the plugin was not called.
    Unavailable,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfFuel => "out of fuel",
            FailureKind::MemoryLimit => "memory limit",
            FailureKind::StackOverflow => "stack overflow",
            FailureKind::OutputLimit => "output limit",
            FailureKind::CapabilityDenied => "capability denied",
            FailureKind::Trap => "trap",
            FailureKind::BadOutput => "bad output",
            FailureKind::Instantiation => "instantiation failed",
            FailureKind::Unavailable => "unavailable",
        })
    }
}

/// A failed plugin call, with what the host could learn about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin `{plugin}` failed ({kind}): {message}")]
pub struct PluginFailure {
    /// The plugin's name.
    pub plugin: String,
    /// The class of the failure.
    pub kind: FailureKind,
    /// The error message (root cause first).
    pub message: String,
    /// The guest's captured stderr (tail, capped).
    pub stderr: String,
    /// The wasm backtrace, when one was captured.
    pub backtrace: Option<String>,
}

/// Captured stderr kept in a failure report.
pub(crate) const STDERR_TAIL: usize = 4096;

impl PluginFailure {
    /// A failure that did not come from running guest code.
    pub(crate) fn new(plugin: &str, kind: FailureKind, message: impl Into<String>) -> Self {
        PluginFailure {
            plugin: plugin.to_string(),
            kind,
            message: message.into(),
            stderr: String::new(),
            backtrace: None,
        }
    }

    /// Classify an error returned by a call into guest code.
    pub(crate) fn classify(
        plugin: &str,
        err: &wasmtime::Error,
        memory_hit: bool,
        output_full: bool,
        stderr: String,
    ) -> Self {
        let trap = err.downcast_ref::<Trap>().copied();
        let kind = if memory_hit || err.downcast_ref::<MemoryLimitExceeded>().is_some() {
            FailureKind::MemoryLimit
        } else if output_full {
            FailureKind::OutputLimit
        } else {
            match trap {
                Some(Trap::Interrupt) => FailureKind::Timeout,
                Some(Trap::OutOfFuel) => FailureKind::OutOfFuel,
                Some(Trap::StackOverflow) => FailureKind::StackOverflow,
                Some(_) => FailureKind::Trap,
                None if is_unknown_import(err) => FailureKind::CapabilityDenied,
                None => FailureKind::Trap,
            }
        };
        let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
        let message = err
            .chain()
            .map(|c| c.to_string())
            .filter(|m| !m.starts_with("error while executing at wasm backtrace"))
            .collect::<Vec<_>>()
            .join(": ");
        PluginFailure {
            plugin: plugin.to_string(),
            kind,
            message,
            stderr,
            backtrace,
        }
    }
}

/// The trap wasmtime links for `define_unknown_imports_as_traps` says so.
fn is_unknown_import(err: &wasmtime::Error) -> bool {
    err.chain().any(|c| {
        let m = c.to_string();
        m.contains("capability not granted")
    })
}
