//! Host configuration: engine settings and per-call limits.

use std::path::PathBuf;
use std::time::Duration;

/// Per-call limits applied to every plugin store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory a plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest table a plugin may grow to, in elements.
    pub table_elements: usize,
    /// Most core instances per store (componentize-py 0.25 components have 38).
    pub instances: usize,
    /// Wall-clock deadline of one call, enforced by epoch interruption.
    pub call_timeout: Duration,
    /// Fuel per call when the host was built with fuel metering.
    pub fuel_per_call: u64,
    /// Cap on captured guest stdout and stderr, in bytes each.
    pub output_bytes: usize,
    /// Cap on the total size of strings a call may return, in bytes.
    pub result_bytes: usize,
    /// Most tokens one call may spend through the `llm` import.
    pub llm_tokens_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 64,
            call_timeout: Duration::from_millis(500),
            fuel_per_call: 200_000_000,
            output_bytes: 64 << 10,
            result_bytes: 4 << 20,
            llm_tokens_per_call: 256,
        }
    }
}

/// Configuration of a [`crate::PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Limits applied to every call (a slot may override them).
    pub limits: Limits,
    /// Meter fuel (deterministic budget) in addition to the epoch deadline.
    /// Off by default: fuel costs ~10–30 % of guest speed.
    pub fuel: bool,
    /// Epoch ticker period; deadlines are rounded up to whole ticks.
    pub epoch_tick: Duration,
    /// Use the pooling instance allocator.
    pub pooling: bool,
    /// Pool size: most component instances alive at once across all slots.
    pub pool_instances: u32,
    /// Largest wasm stack, in bytes (deep recursion traps beyond it).
    pub max_wasm_stack: usize,
    /// Folder of the compiled-component cache; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Consecutive failures after which a slot is quarantined.
    pub quarantine_after: u32,
    /// First back-off after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Most warm instances kept per slot for reuse.
    pub warm_instances: usize,
    /// Calls one warm instance serves before it is recycled.
    pub instance_reuse: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            limits: Limits::default(),
            fuel: false,
            epoch_tick: Duration::from_millis(5),
            pooling: true,
            pool_instances: 128,
            max_wasm_stack: 512 << 10,
            cache_dir: None,
            quarantine_after: 5,
            backoff_base: Duration::from_millis(50),
            warm_instances: 16,
            instance_reuse: 1000,
        }
    }
}
