//! Engram's HTTP front door.
//!
//! - `POST /v1/chat/completions`, `GET /v1/models`: the OpenAI-compatible protocol
//!   (streaming SSE, usage with `cached_tokens`, tools).
//! - `POST /v1/chat`: the native endpoint, the same body plus the `memory` knobs; its answer
//!   carries what memory did for the turn.
//! - `POST /v1/abort/{id}`: stop a running generation.
//! - `GET /v1/metrics`: Prometheus text.
//! - `GET /`: the web console.
//!
//! Generation runs on one engine worker thread that owns the model and the sessions' KV
//! caches ([`worker`]); HTTP handlers talk to it through channels, so a slow client never
//! blocks the engine and a dropped connection stops its generation.

#![warn(missing_docs)]

pub mod admin;
pub mod agency;
pub mod capabilities;
pub mod config;
mod conn;
pub mod error;
pub mod heartbeat;
pub mod memory;
pub mod metrics;
pub mod openai;
pub mod plugin_watch;
mod routes;
pub mod sessions;
pub mod tools;
pub mod worker;

pub use config::ServerConfig;
pub use error::ApiError;
pub use routes::router;

use std::sync::Arc;

/// Everything the handlers share.
pub struct AppState {
    /// Settings.
    pub config: ServerConfig,
    /// The engine worker.
    pub engine: worker::EngineHandle,
    /// Metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The memory services (store and behaviour plugins); `None` with `--no-memory`.
    pub memory: Option<Arc<memory::MemoryServices>>,
}

/// Serve until Ctrl-C / SIGTERM: bind, print the address, answer requests, then let the
/// worker persist its sessions.
pub async fn serve(state: Arc<AppState>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(state.config.listen).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "engram is serving");
    println!("engram: serving on http://{local} (console at http://{local}/)");
    let app = router(state.clone());
    let _heartbeat = heartbeat::spawn(state.config.heartbeat, state.memory.clone());
    let _plugin_watch = plugin_watch::spawn(state.config.watch_plugins, state.memory.clone());
    conn::serve_connections(
        listener,
        app,
        state.config.header_read_timeout,
        shutdown_signal(),
    )
    .await?;
    state.engine.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
