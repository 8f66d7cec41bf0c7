//! Per-store state: limits, WASI context, captured output and host imports.

use crate::bindings::agency::engram::plugin::{clock, llm, log, memory, types};
use crate::bindings::types::{Fact, MemoryItem};
use crate::config::Limits;
use crate::services::{LlmRequest, Services};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Marker error returned when a plugin tries to grow past its memory limit;
/// failures are classified by finding it as the root cause.
#[derive(Debug, thiserror::Error)]
#[error("plugin memory limit exceeded: asked for {desired} bytes, limit is {limit} bytes")]
pub struct MemoryLimitExceeded {
    /// Bytes the guest asked for.
    pub desired: usize,
    /// The configured limit.
    pub limit: usize,
}

/// Resource limiter that traps (rather than failing `memory.grow`) at the
/// limit, so the host can tell a memory bomb from any other trap.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    /// Set when a memory growth was refused.
    pub memory_hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_hit = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                desired,
                limit: self.memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.instances * 4
    }
    fn memories(&self) -> usize {
        self.instances
    }
}

/// Everything a plugin store holds.
pub struct PluginState {
    pub(crate) plugin: Arc<str>,
    pub(crate) limiter: Limiter,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) services: Services,
    pub(crate) llm_tokens_left: u32,
    pub(crate) llm_tokens_per_call: u32,
    /// The first ungranted capability the current call reached for that the
    /// host answered with an empty value rather than a trap (see
    /// `sandbox::deny_environment`); a call that sets it is failed afterwards.
    pub(crate) denied: Option<String>,
}

impl PluginState {
    pub(crate) fn new(
        plugin: Arc<str>,
        limits: &Limits,
        wasi: WasiCtx,
        pipes: (MemoryOutputPipe, MemoryOutputPipe),
        services: Services,
    ) -> Self {
        PluginState {
            plugin,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                instances: limits.instances,
                memory_hit: false,
            },
            wasi,
            table: ResourceTable::new(),
            stdout: pipes.0,
            stderr: pipes.1,
            services,
            llm_tokens_left: limits.llm_tokens_per_call,
            llm_tokens_per_call: limits.llm_tokens_per_call,
            denied: None,
        }
    }

    /// Reset the per-call budgets before a call.
    pub(crate) fn begin_call(&mut self) {
        self.llm_tokens_left = self.llm_tokens_per_call;
        self.limiter.memory_hit = false;
        self.denied = None;
    }

    /// Record that the current call reached for `what`, which was not granted.
    pub(crate) fn deny(&mut self, what: &str) {
        if self.denied.is_none() {
            tracing::warn!(plugin = &*self.plugin, "capability not granted: {what}");
            self.denied = Some(what.to_string());
        }
    }

    /// Bytes of captured stdout and stderr so far.
    pub(crate) fn output_len(&self) -> (usize, usize) {
        (self.stdout.contents().len(), self.stderr.contents().len())
    }

    /// The last `cap` bytes of captured stderr, as text.
    pub(crate) fn stderr_tail(&self, cap: usize) -> String {
        let all = self.stderr.contents();
        let start = all.len().saturating_sub(cap);
        String::from_utf8_lossy(&all[start..]).into_owned()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let message: String = message.chars().take(4096).collect();
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl clock::Host for PluginState {
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl llm::Host for PluginState {
    fn complete(&mut self, req: llm::Request) -> Result<String, String> {
        let Some(backend) = self.services.llm.clone() else {
            return Err("no model is attached to this host (llm import unavailable)".into());
        };
        if self.llm_tokens_left == 0 {
            return Err(format!(
                "llm budget exhausted: {} tokens per call",
                self.llm_tokens_per_call
            ));
        }
        let request = LlmRequest {
            prompt: req.prompt,
            max_tokens: req.max_tokens.min(self.llm_tokens_left),
            forced_prefix: req.forced_prefix,
        };
        let response = backend.complete(&request)?;
        self.llm_tokens_left = self.llm_tokens_left.saturating_sub(response.tokens.max(1));
        tracing::debug!(
            plugin = &*self.plugin,
            tokens = response.tokens,
            "llm side call"
        );
        Ok(response.text)
    }
}

impl PluginState {
    fn memory(&self) -> Result<Arc<dyn crate::services::MemoryBackend>, String> {
        self.services.memory.clone().ok_or_else(|| {
            "no memory store is attached to this host (memory import unavailable)".into()
        })
    }
}

impl memory::Host for PluginState {
    fn search(&mut self, query: String, limit: u32) -> Result<Vec<MemoryItem>, String> {
        self.memory()?.search(&query, limit)
    }
    fn list_items(&mut self, offset: u32, limit: u32) -> Result<Vec<MemoryItem>, String> {
        self.memory()?.list(offset, limit)
    }
    fn remember(&mut self, fact: Fact) -> Result<String, String> {
        self.memory()?.remember(&fact)
    }
    fn forget(&mut self, id: String) -> Result<(), String> {
        self.memory()?.forget(&id)
    }
    fn supersede(&mut self, old_id: String, fact: Fact) -> Result<String, String> {
        self.memory()?.supersede(&old_id, &fact)
    }
    fn merge(&mut self, keep_id: String, drop_ids: Vec<String>) -> Result<(), String> {
        self.memory()?.merge(&keep_id, &drop_ids)
    }
    fn set_strength(&mut self, id: String, strength: f32) -> Result<(), String> {
        self.memory()?.set_strength(&id, strength)
    }
}
