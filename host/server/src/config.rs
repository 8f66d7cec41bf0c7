//! Server settings (filled from `engram serve`'s flags).

use std::net::SocketAddr;
use std::path::PathBuf;

/// How `engram serve` runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Folder for sessions, the memory store and caches.
    pub data_dir: PathBuf,
    /// Token required by administration routes (and for listening beyond loopback).
    pub admin_token: Option<String>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: u32,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: u32,
    /// Sessions kept in memory before the least recently used is evicted to disk.
    pub max_sessions_in_memory: usize,
    /// Generation requests allowed to wait for the engine before new ones get 503.
    pub max_queue: usize,
    /// Name reported by `/v1/models`.
    pub model_name: String,
    /// A connection that has not sent its complete request headers within this time is
    /// closed (slowloris protection); other connections are unaffected.
    pub header_read_timeout: std::time::Duration,
    /// The memory heartbeat (off by default).
    pub heartbeat: crate::heartbeat::HeartbeatSettings,
    /// Poll interval of the plugins-folder watcher that hot-swaps rebuilt slot components
    /// (`None`: off, the default).
    pub watch_plugins: Option<std::time::Duration>,
}

impl ServerConfig {
    /// Defaults for `data_dir`, listening on loopback port 8080.
    pub fn new(data_dir: PathBuf, model_name: String) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            admin_token: None,
            max_body_bytes: 1 << 20,
            max_tokens_limit: 4096,
            default_max_tokens: 256,
            max_sessions_in_memory: 16,
            max_queue: 64,
            model_name,
            header_read_timeout: std::time::Duration::from_secs(10),
            heartbeat: crate::heartbeat::HeartbeatSettings::default(),
            watch_plugins: None,
        }
    }

    /// Refuse settings that would expose the server unsafely.
    pub fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.admin_token.is_none() {
            return Err(format!(
                "refusing to listen on {} without an admin token: set --admin-token (or \
                 ENGRAM_ADMIN_TOKEN), or listen on loopback",
                self.listen
            ));
        }
        if self.default_max_tokens > self.max_tokens_limit {
            return Err("the default max_tokens exceeds the max_tokens limit".into());
        }
        Ok(())
    }
}
