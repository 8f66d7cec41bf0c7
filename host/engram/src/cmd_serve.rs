//! `engram serve`: load the model and serve chat over HTTP (loopback by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cmd_generate::{load, ModelArgs};
use crate::locate::Places;

/// Arguments of `engram serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback requires an admin token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Which model to serve and with how many threads.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token required by administration routes.
    #[arg(long, env = "ENGRAM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body accepted, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens_limit: u32,
    /// Serve without the memory store and plugins: every turn is the plain engine.
    #[arg(long)]
    pub no_memory: bool,
    /// Sessions whose KV cache stays in memory before the least recently used goes to disk.
    #[arg(long, default_value_t = 16)]
    pub max_sessions: usize,
    /// Seconds a connection may take to send its request headers before it is closed.
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout_secs: f64,
    /// Memory heartbeat tick, ms: between turns it consolidates idle conversations and runs
    /// the agency plugin's maintenance round (0 = off).
    #[arg(long, default_value_t = 0)]
    pub heartbeat_interval_ms: u64,
    /// Quiet time before a heartbeat tick works, and before a conversation counts as
    /// finished, ms.
    #[arg(long, default_value_t = 30_000)]
    pub heartbeat_idle_ms: u64,
    /// Poll the plugins folder every this many ms and hot-swap a slot when its component file
    /// changes (a rebuild); 0 = off.
    #[arg(long, default_value_t = 0)]
    pub watch_plugins_ms: u64,
}

/// Run the server until Ctrl-C or SIGTERM.
pub fn run(places: &Places, args: ServeArgs) -> anyhow::Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("loading the model");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let model = load(places, &args.model);
    spinner.finish_and_clear();
    let model = model?;
    let model_name = model
        .gguf()
        .path()
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "engram".into());
    let mut config = engram_server::ServerConfig::new(places.data.clone(), model_name);
    config.listen = args.listen;
    config.admin_token = args.admin_token;
    config.max_body_bytes = args.max_body_bytes;
    config.max_tokens_limit = args.max_tokens_limit;
    config.max_sessions_in_memory = args.max_sessions;
    config.header_read_timeout = Duration::try_from_secs_f64(args.header_timeout_secs)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--header-timeout-secs must be a positive number of seconds")?;
    config.watch_plugins = (args.watch_plugins_ms > 0)
        .then(|| std::time::Duration::from_millis(args.watch_plugins_ms));
    config.heartbeat = engram_server::heartbeat::HeartbeatSettings::from_millis(
        args.heartbeat_interval_ms,
        args.heartbeat_idle_ms,
    );
    config.check().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    let memory = if args.no_memory {
        None
    } else {
        let mut settings = engram_server::memory::default_settings(
            &config.data_dir,
            &places.models,
            &places.plugins,
        );
        settings.consolidate = config.heartbeat.enabled();
        let services = engram_server::memory::MemoryServices::open(&settings)
            .context("cannot start the memory services")?;
        Some(Arc::new(services))
    };
    // The tool plugins (tool_*.wasm) in the plugins folder, run server-side when a native
    // request sets `server_tools`; they share the memory services' plugin host.
    let tools = memory.as_ref().map(|services| {
        Arc::new(engram_server::tools::server::ServerTools::load(
            &services.host,
            &places.plugins,
        ))
    });
    let metrics = Arc::new(engram_server::metrics::Metrics::new());
    let engine = engram_server::worker::EngineHandle::start(
        model,
        engram_server::worker::WorkerConfig {
            sessions_dir: config.data_dir.join("sessions"),
            max_sessions_in_memory: config.max_sessions_in_memory,
            max_queue: config.max_queue,
            memory: memory.clone(),
            tools,
            default_exact: args.model.exact,
            load_other_mode: Some(other_mode_loader(places, &args.model)),
        },
        metrics.clone(),
    )
    .context("cannot start the engine worker")?;
    let state = Arc::new(engram_server::AppState {
        config,
        engine,
        metrics,
        memory,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(engram_server::serve(state))
        .context("the server stopped with an error")
}

/// Loads the served model file in the other arithmetic mode, for requests whose `exact` field
/// differs from the server's: on the first such request, not at start (a server whose clients
/// never ask pays nothing).
fn other_mode_loader(places: &Places, model: &ModelArgs) -> engram_server::worker::LoadOtherMode {
    let (places, mut other) = (places.clone(), model.clone());
    other.exact = !model.exact;
    Box::new(move || load(&places, &other).map_err(|err| format!("{err:#}")))
}
