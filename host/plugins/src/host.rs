//! The plugin host: one wasmtime engine, its epoch ticker, the compile cache,
//! and loading components into ready-to-call [`Loaded`] plugins.

use crate::bindings;
use crate::cache::{sha256_hex, CompileCache, LoadPath};
use crate::config::HostConfig;
use crate::failure::{FailureKind, PluginFailure, STDERR_TAIL};
use crate::kind::PluginKind;
use crate::manifest::{Effective, Grants, Manifest, ManifestError};
use crate::services::Services;
use crate::slot::Slot;
use crate::state::PluginState;
use crate::version::{self, VersionError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store};

/// Error creating a [`PluginHost`].
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasmtime engine rejected the configuration.
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    /// The cache folder is unusable.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

/// Error loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component file could not be read.
    #[error("cannot read plugin component {path}: {source}")]
    Read {
        /// The component path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest declares another kind than the slot's.
    #[error("plugin `{name}` declares kind `{declared}` but is being loaded as `{kind}`")]
    KindMismatch {
        /// Plugin name.
        name: String,
        /// Kind from the manifest.
        declared: String,
        /// Kind requested.
        kind: PluginKind,
    },
    /// The bytes are not a valid component, or compiling failed.
    #[error("plugin `{name}` is not a loadable wasm component: {message}")]
    Compile {
        /// Plugin name.
        name: String,
        /// The compiler's error.
        message: String,
    },
    /// Built for an incompatible WIT version or another kind.
    #[error("plugin `{name}`: {source}")]
    Version {
        /// Plugin name.
        name: String,
        /// What does not fit.
        source: VersionError,
    },
    /// Linking or pre-instantiation failed.
    #[error("plugin `{name}` cannot be linked: {message}")]
    Link {
        /// Plugin name.
        name: String,
        /// The linker's error.
        message: String,
    },
    /// The smoke call before a swap failed.
    #[error("smoke call failed: {0}")]
    Smoke(PluginFailure),
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) config: HostConfig,
    pub(crate) cache: CompileCache,
    pub(crate) services: Services,
    pub(crate) deadline_ticks: u64,
    _ticker: Ticker,
}

/// The plugin host. Cheap to clone (shared).
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<HostInner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// The typed pre-instantiated component of one kind.
#[derive(Clone)]
pub(crate) enum Pre {
    Judge(bindings::judge::JudgePre<PluginState>),
    RecallPolicy(bindings::recall_policy::RecallPolicyPre<PluginState>),
    Capture(bindings::capture::CapturePre<PluginState>),
    Tool(bindings::tool::ToolPre<PluginState>),
    Agency(bindings::agency::AgencyPre<PluginState>),
}

/// A live instance of one kind.
pub(crate) enum Instance {
    Judge(bindings::judge::Judge),
    RecallPolicy(bindings::recall_policy::RecallPolicy),
    Capture(bindings::capture::Capture),
    Tool(bindings::tool::Tool),
    Agency(bindings::agency::Agency),
}

/// An instantiated plugin with its store, reusable for several calls.
pub(crate) struct Warm {
    pub(crate) store: Store<PluginState>,
    pub(crate) instance: Instance,
    pub(crate) calls: u32,
}

/// A compiled, linked, pre-instantiated plugin: what a slot holds.
pub struct Loaded {
    /// Plugin name (manifest name or file stem).
    pub name: String,
    /// Its kind.
    pub kind: PluginKind,
    /// SHA-256 of the component bytes (hex).
    pub hash: String,
    /// The `engram:plugin` version it was built for.
    pub wit_version: semver::Version,
    /// Its manifest.
    pub manifest: Manifest,
    /// Capabilities it actually got.
    pub capabilities: Effective,
    /// Whether it was compiled or came from the cache.
    pub load_path: LoadPath,
    /// Time to compile or deserialize, link and pre-instantiate.
    pub load_time: Duration,
    /// Size of the component in bytes.
    pub size: usize,
    pub(crate) component: wasmtime::component::Component,
    pub(crate) pre: Pre,
    pub(crate) warm: Mutex<Vec<Warm>>,
    pub(crate) host: Arc<HostInner>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("hash", &self.hash)
            .field("wit_version", &self.wit_version)
            .field("load_path", &self.load_path)
            .finish()
    }
}

impl PluginHost {
    /// Create a host: configure the engine, start the epoch ticker, open the cache.
    pub fn new(config: HostConfig, services: Services) -> Result<PluginHost, HostError> {
        let mut c = wasmtime::Config::new();
        c.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(config.fuel)
            .max_wasm_stack(config.max_wasm_stack)
            .concurrency_support(false);
        if config.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            let n = config.pool_instances.max(1);
            pool.total_component_instances(n)
                .total_core_instances(n * 4)
                .total_memories(n * 2)
                .total_tables(n * 4)
                .max_core_instances_per_component(config.limits.instances as u32)
                .max_memories_per_component(config.limits.instances as u32)
                .max_tables_per_component(config.limits.instances as u32 * 4)
                .max_memory_size(config.limits.memory_bytes)
                .max_component_instance_size(1 << 20)
                .max_core_instance_size(1 << 20);
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = CompileCache::new(&engine, config.cache_dir.as_deref())?;
        let tick = config.epoch_tick.max(Duration::from_micros(100));
        let deadline_ticks = (config
            .limits
            .call_timeout
            .as_nanos()
            .div_ceil(tick.as_nanos()))
        .max(1) as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("engram-plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| HostError::Engine(format!("cannot start the epoch ticker: {e}")))?
        };
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                config,
                cache,
                services,
                deadline_ticks,
                _ticker: Ticker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    /// The wasmtime engine (shared by every plugin of this host).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The configuration the host was created with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Compile (or load from cache), check and pre-instantiate the component
    /// at `path` with its manifest (`<stem>.toml` beside it, if any).
    pub fn prepare(
        &self,
        kind: PluginKind,
        path: &Path,
        grants: &Grants,
    ) -> Result<Arc<Loaded>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest = Manifest::for_component(path)?;
        self.prepare_bytes(kind, &bytes, manifest, grants)
    }

    /// Like [`PluginHost::prepare`] for component bytes already in memory.
    pub fn prepare_bytes(
        &self,
        kind: PluginKind,
        bytes: &[u8],
        manifest: Manifest,
        grants: &Grants,
    ) -> Result<Arc<Loaded>, LoadError> {
        let started = Instant::now();
        let name = manifest.name.clone();
        if let Some(declared) = &manifest.kind {
            if declared.parse::<PluginKind>().ok() != Some(kind) {
                return Err(LoadError::KindMismatch {
                    name,
                    declared: declared.clone(),
                    kind,
                });
            }
        }
        let hash = sha256_hex(bytes);
        let engine = &self.inner.engine;
        let (component, load_path) =
            self.inner
                .cache
                .load(engine, bytes, &hash)
                .map_err(|e| LoadError::Compile {
                    name: name.clone(),
                    message: format!("{e:#}"),
                })?;
        let wit_version =
            version::check(engine, &component, kind).map_err(|source| LoadError::Version {
                name: name.clone(),
                source,
            })?;
        let capabilities = Effective::resolve(kind, &manifest.capabilities, grants);
        let link = |e: wasmtime::Error| LoadError::Link {
            name: name.clone(),
            message: format!("{e:#}"),
        };
        let linker =
            crate::sandbox::linker(engine, kind, &capabilities, &component).map_err(link)?;
        let ip = linker.instantiate_pre(&component).map_err(link)?;
        let pre = match kind {
            PluginKind::Judge => Pre::Judge(bindings::judge::JudgePre::new(ip).map_err(link)?),
            PluginKind::RecallPolicy => {
                Pre::RecallPolicy(bindings::recall_policy::RecallPolicyPre::new(ip).map_err(link)?)
            }
            PluginKind::Capture => {
                Pre::Capture(bindings::capture::CapturePre::new(ip).map_err(link)?)
            }
            PluginKind::Tool => Pre::Tool(bindings::tool::ToolPre::new(ip).map_err(link)?),
            PluginKind::Agency => Pre::Agency(bindings::agency::AgencyPre::new(ip).map_err(link)?),
        };
        let loaded = Loaded {
            name,
            kind,
            hash,
            wit_version,
            manifest,
            capabilities,
            load_path,
            load_time: started.elapsed(),
            size: bytes.len(),
            component,
            pre,
            warm: Mutex::new(Vec::new()),
            host: self.inner.clone(),
        };
        tracing::info!(plugin = %loaded.name, kind = %kind, hash = %loaded.hash, ?load_path,
            ms = loaded.load_time.as_secs_f64() * 1e3, "plugin prepared");
        Ok(Arc::new(loaded))
    }

    /// Compile (or load from cache) the component at `path` and find out what
    /// it is, without linking or running it.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest = Manifest::for_component(path)?;
        let name = manifest.name.clone();
        let hash = sha256_hex(&bytes);
        let engine = &self.inner.engine;
        let (component, load_path) =
            self.inner
                .cache
                .load(engine, &bytes, &hash)
                .map_err(|e| LoadError::Compile {
                    name: name.clone(),
                    message: format!("{e:#}"),
                })?;
        let ty = component.component_type();
        let imports = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
        let exports = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let detected = version::detect(engine, &component);
        Ok(Inspection {
            name,
            hash,
            size: bytes.len(),
            manifest,
            load_path,
            imports,
            exports,
            detected,
        })
    }

    /// Load the component at `path` into a new slot (prepare + smoke call).
    pub fn load(&self, kind: PluginKind, path: &Path, grants: &Grants) -> Result<Slot, LoadError> {
        let loaded = self.prepare(kind, path, grants)?;
        loaded.smoke().map_err(LoadError::Smoke)?;
        Ok(Slot::new(self.clone(), loaded))
    }
}

impl Loaded {
    /// Names of everything the component imports (interfaces and functions).
    pub fn imports(&self) -> Vec<String> {
        let ty = self.component.component_type();
        ty.imports(&self.host.engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Names of everything the component exports.
    pub fn exports(&self) -> Vec<String> {
        let ty = self.component.component_type();
        ty.exports(&self.host.engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Instantiate a fresh store and instance of this plugin.
    pub(crate) fn instantiate(&self) -> Result<Warm, PluginFailure> {
        let h = &self.host;
        let (wasi, pipes) = crate::sandbox::wasi_ctx(&self.capabilities, &h.config.limits)
            .map_err(|e| {
                PluginFailure::new(&self.name, FailureKind::Instantiation, format!("{e:#}"))
            })?;
        let state = PluginState::new(
            Arc::from(self.name.as_str()),
            &h.config.limits,
            wasi,
            pipes,
            h.services.clone(),
        );
        let mut store = Store::new(&h.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(h.deadline_ticks);
        if h.config.fuel {
            let _ = store.set_fuel(h.config.limits.fuel_per_call);
        }
        let result = match &self.pre {
            Pre::Judge(p) => p.instantiate(&mut store).map(Instance::Judge),
            Pre::RecallPolicy(p) => p.instantiate(&mut store).map(Instance::RecallPolicy),
            Pre::Capture(p) => p.instantiate(&mut store).map(Instance::Capture),
            Pre::Tool(p) => p.instantiate(&mut store).map(Instance::Tool),
            Pre::Agency(p) => p.instantiate(&mut store).map(Instance::Agency),
        };
        match result {
            Ok(_) if store.data().denied.is_some() => Err(PluginFailure::new(
                &self.name,
                FailureKind::CapabilityDenied,
                format!(
                    "capability not granted while instantiating: `{}`",
                    store.data().denied.clone().unwrap_or_default()
                ),
            )),
            Ok(instance) => Ok(Warm {
                store,
                instance,
                calls: 0,
            }),
            Err(e) => {
                let mut f = self.classify(&store, &e);
                if f.kind == FailureKind::Trap {
                    f.kind = FailureKind::Instantiation;
                }
                Err(f)
            }
        }
    }

    pub(crate) fn classify(
        &self,
        store: &Store<PluginState>,
        e: &wasmtime::Error,
    ) -> PluginFailure {
        let data = store.data();
        let cap = self.host.config.limits.output_bytes;
        let (out, err) = data.output_len();
        PluginFailure::classify(
            &self.name,
            e,
            data.limiter.memory_hit,
            out >= cap || err >= cap,
            data.stderr_tail(STDERR_TAIL),
        )
    }

    /// Run `f` on a warm (or fresh) instance with fresh per-call budgets; the
    /// instance goes back to the warm pool only after a clean call.
    pub(crate) fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Store<PluginState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        let h = &self.host;
        let warm = self.warm.lock().map(|mut w| w.pop()).unwrap_or(None);
        let mut warm = match warm {
            Some(w) => w,
            None => self.instantiate()?,
        };
        warm.store.data_mut().begin_call();
        warm.store.set_epoch_deadline(h.deadline_ticks);
        if h.config.fuel {
            let _ = warm.store.set_fuel(h.config.limits.fuel_per_call);
        }
        match f(&mut warm.store, &warm.instance) {
            // The plugin answered after reaching for a capability it was not
            // granted (answered empty): its answer is not trusted, and the
            // instance is dropped.
            Ok(_) if warm.store.data().denied.is_some() => {
                let data = warm.store.data();
                let what = data.denied.clone().unwrap_or_default();
                let mut failure = PluginFailure::new(
                    &self.name,
                    FailureKind::CapabilityDenied,
                    format!(
                        "capability not granted: `{what}`; the answer was discarded \
                         (grant it in the operator's config if the plugin needs it)"
                    ),
                );
                failure.stderr = data.stderr_tail(STDERR_TAIL);
                Err(failure)
            }
            Ok(r) => {
                warm.calls += 1;
                let (out, err) = warm.store.data().output_len();
                let half = h.config.limits.output_bytes / 2;
                if warm.calls < h.config.instance_reuse && out < half && err < half {
                    if let Ok(mut pool) = self.warm.lock() {
                        if pool.len() < h.config.warm_instances {
                            pool.push(warm);
                        }
                    }
                }
                Ok(r)
            }
            // After any trap the instance is poisoned: drop it.
            Err(e) => Err(self.classify(&warm.store, &e)),
        }
    }
}

/// What [`PluginHost::inspect`] found out about a component.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Plugin name (manifest name or file stem).
    pub name: String,
    /// SHA-256 of the component bytes (hex).
    pub hash: String,
    /// Size in bytes.
    pub size: usize,
    /// Its manifest (empty when there is none).
    pub manifest: Manifest,
    /// Compiled now or loaded from the cache.
    pub load_path: LoadPath,
    /// Everything it imports.
    pub imports: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
    /// Its kind and `engram:plugin` version, or why it does not fit this host.
    pub detected: Result<(PluginKind, semver::Version), VersionError>,
}

/// Default folder of plugin components built by `scripts/setup.sh`.
pub fn default_components_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("plugins/target/wasm32-wasip2/release")
}
