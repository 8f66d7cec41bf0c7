//! Capability granting: which imports are linked for real and which trap.
//!
//! Every plugin gets the `engram:plugin` imports of its world plus captured
//! stdout/stderr (memory pipes with a cap, so panics are reported). WASI
//! environment, filesystem, clocks and random are linked only when the
//! effective capabilities include them; sockets never are. Every other import
//! the component declares is linked as a trap, so a plugin that reaches for a
//! capability it was not granted stops on the spot.

use crate::bindings;
use crate::config::Limits;
use crate::kind::PluginKind;
use crate::manifest::Effective;
use crate::state::PluginState;
use wasmtime::component::{Component, HasData, HasSelf, Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

struct HasTable;
impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Build the linker for one component of `kind` with capabilities `caps`.
pub(crate) fn linker(
    engine: &Engine,
    kind: PluginKind,
    caps: &Effective,
    component: &Component,
) -> wasmtime::Result<Linker<PluginState>> {
    let mut l: Linker<PluginState> = Linker::new(engine);
    type S = HasSelf<PluginState>;
    match kind {
        PluginKind::Judge => bindings::judge::Judge::add_to_linker::<_, S>(&mut l, |s| s)?,
        PluginKind::RecallPolicy => {
            bindings::recall_policy::RecallPolicy::add_to_linker::<_, S>(&mut l, |s| s)?
        }
        PluginKind::Capture => bindings::capture::Capture::add_to_linker::<_, S>(&mut l, |s| s)?,
        PluginKind::Tool => bindings::tool::Tool::add_to_linker::<_, S>(&mut l, |s| s)?,
        PluginKind::Agency => bindings::agency::Agency::add_to_linker::<_, S>(&mut l, |s| s)?,
    }

    // Captured standard streams: no capability, but panics become readable.
    wasi::io::error::add_to_linker::<_, HasTable>(&mut l, |s| &mut s.table)?;
    wasi::sync::io::poll::add_to_linker::<_, HasTable>(&mut l, |s| &mut s.table)?;
    wasi::sync::io::streams::add_to_linker::<_, HasTable>(&mut l, |s| &mut s.table)?;
    wasi::cli::stdin::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(&mut l, PluginState::cli)?;
    wasi::cli::stdout::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(&mut l, PluginState::cli)?;
    wasi::cli::stderr::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(&mut l, PluginState::cli)?;
    wasi::cli::exit::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(&mut l, PluginState::cli)?;
    wasi::cli::terminal_input::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
        &mut l,
        PluginState::cli,
    )?;
    wasi::cli::terminal_output::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
        &mut l,
        PluginState::cli,
    )?;
    wasi::cli::terminal_stdin::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
        &mut l,
        PluginState::cli,
    )?;
    wasi::cli::terminal_stdout::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
        &mut l,
        PluginState::cli,
    )?;
    wasi::cli::terminal_stderr::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
        &mut l,
        PluginState::cli,
    )?;

    // The environment holds only granted variables: never the host's. With no
    // grant it is denied (see `deny_environment`), not trapped, because Rust's
    // panic hook reads `RUST_BACKTRACE` and a panic must stay a readable trap.
    if caps.env.is_empty() {
        deny_environment(&mut l, engine, component)?;
    } else {
        wasi::cli::environment::add_to_linker::<_, wasmtime_wasi::cli::WasiCli>(
            &mut l,
            PluginState::cli,
        )?;
    }
    if !caps.read_dirs.is_empty() {
        wasi::filesystem::preopens::add_to_linker::<_, wasmtime_wasi::filesystem::WasiFilesystem>(
            &mut l,
            PluginState::filesystem,
        )?;
        wasi::sync::filesystem::types::add_to_linker::<_, wasmtime_wasi::filesystem::WasiFilesystem>(
            &mut l,
            PluginState::filesystem,
        )?;
    }
    if caps.clocks {
        wasi::clocks::wall_clock::add_to_linker::<_, wasmtime_wasi::clocks::WasiClocks>(
            &mut l,
            PluginState::clocks,
        )?;
        wasi::clocks::monotonic_clock::add_to_linker::<_, wasmtime_wasi::clocks::WasiClocks>(
            &mut l,
            PluginState::clocks,
        )?;
    }
    if caps.random {
        type R = wasmtime_wasi::random::WasiRandom;
        wasi::random::random::add_to_linker::<_, R>(&mut l, |s| s.wasi.random())?;
        wasi::random::insecure::add_to_linker::<_, R>(&mut l, |s| s.wasi.random())?;
        wasi::random::insecure_seed::add_to_linker::<_, R>(&mut l, |s| s.wasi.random())?;
    }
    // Everything not granted above: a trap when called.
    let mut linked: Vec<&str> = vec![
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/exit",
        "wasi:cli/environment",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
    ];
    linked.extend(world_imports(kind));
    if !caps.read_dirs.is_empty() {
        linked.extend(["wasi:filesystem/preopens", "wasi:filesystem/types"]);
    }
    if caps.clocks {
        linked.extend(["wasi:clocks/wall-clock", "wasi:clocks/monotonic-clock"]);
    }
    if caps.random {
        linked.extend([
            "wasi:random/random",
            "wasi:random/insecure",
            "wasi:random/insecure-seed",
        ]);
    }
    stub_ungranted(&mut l, engine, component, &linked)?;
    Ok(l)
}

/// The `engram:plugin` interfaces a kind's world imports.
fn world_imports(kind: PluginKind) -> &'static [&'static str] {
    match kind {
        PluginKind::Judge | PluginKind::RecallPolicy => {
            &["engram:plugin/types", "engram:plugin/log"]
        }
        PluginKind::Capture => &[
            "engram:plugin/types",
            "engram:plugin/log",
            "engram:plugin/clock",
            "engram:plugin/llm",
        ],
        PluginKind::Tool => &[
            "engram:plugin/types",
            "engram:plugin/log",
            "engram:plugin/clock",
        ],
        PluginKind::Agency => &[
            "engram:plugin/types",
            "engram:plugin/log",
            "engram:plugin/clock",
            "engram:plugin/llm",
            "engram:plugin/memory",
        ],
    }
}

/// Link `wasi:cli/environment` for a plugin granted no environment: every
/// function answers empty (no variables, no arguments, no working directory)
/// and records the attempt, so the host fails the call afterwards
/// ([`FailureKind::CapabilityDenied`](crate::failure::FailureKind)) instead of
/// trapping mid-way. A trap would hide a panic's message: Rust's panic hook
/// reads `RUST_BACKTRACE` before it prints, and the trap that follows the panic
/// still classifies the call as a panic.
fn deny_environment(
    l: &mut Linker<PluginState>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let Some(name) = ty
        .imports(engine)
        .map(|(name, _)| name)
        .find(|name| name.split('@').next() == Some("wasi:cli/environment"))
    else {
        return Ok(());
    };
    let mut li = l.instance(name)?;
    li.func_wrap(
        "get-environment",
        |mut store: wasmtime::StoreContextMut<'_, PluginState>, (): ()| {
            store
                .data_mut()
                .deny("wasi:cli/environment#get-environment (no environment variables granted)");
            Ok((Vec::<(String, String)>::new(),))
        },
    )?;
    li.func_wrap(
        "get-arguments",
        |mut store: wasmtime::StoreContextMut<'_, PluginState>, (): ()| {
            store
                .data_mut()
                .deny("wasi:cli/environment#get-arguments (plugins have no arguments)");
            Ok((Vec::<String>::new(),))
        },
    )?;
    li.func_wrap(
        "initial-cwd",
        |mut store: wasmtime::StoreContextMut<'_, PluginState>, (): ()| {
            store
                .data_mut()
                .deny("wasi:cli/environment#initial-cwd (plugins have no working directory)");
            Ok((None::<String>,))
        },
    )?;
    Ok(())
}

/// Define every import of `component` whose interface is not in `linked` as
/// functions that trap with "capability not granted". (Wasmtime's own
/// `define_unknown_imports_as_traps` matches names exactly, so it would shadow
/// semver-compatible definitions such as `wasi:cli/stderr@0.2.12` serving an
/// `@0.2.6` import.)
fn stub_ungranted(
    l: &mut Linker<PluginState>,
    engine: &Engine,
    component: &Component,
    linked: &[&str],
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    // Resources the linked interfaces define (e.g. `input-stream`); other
    // interfaces `use` them and must not get a fresh (mismatching) definition.
    let mut shared_resources = Vec::new();
    for (name, item) in ty.imports(engine) {
        let unversioned = name.split('@').next().unwrap_or(name);
        if let (true, ComponentItem::ComponentInstance(inst)) =
            (linked.contains(&unversioned), item.ty)
        {
            for (export, item) in inst.exports(engine) {
                if matches!(item.ty, ComponentItem::Resource(_)) {
                    shared_resources.push(export.to_string());
                }
            }
        }
    }
    for (name, item) in ty.imports(engine) {
        let unversioned = name.split('@').next().unwrap_or(name);
        if linked.contains(&unversioned) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(inst) => {
                let mut li = l.instance(name)?;
                for (export, item) in inst.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => {
                            let what = format!("{name}#{export}");
                            li.func_new(export, move |_, _, _, _| {
                                Err(wasmtime::Error::msg(format!(
                                    "capability not granted: `{what}` (unknown import)"
                                )))
                            })?;
                        }
                        ComponentItem::Resource(_)
                            if !shared_resources.iter().any(|r| r == export) =>
                        {
                            li.resource(
                                export,
                                wasmtime::component::ResourceType::host::<()>(),
                                |_, _| Ok(()),
                            )?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let what = name.to_string();
                l.root().func_new(name, move |_, _, _, _| {
                    Err(wasmtime::Error::msg(format!(
                        "capability not granted: `{what}` (unknown import)"
                    )))
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Build the WASI context for one store: no inherited env, no args, no
/// preopens beyond the granted read-only folders, captured output.
pub(crate) fn wasi_ctx(
    caps: &Effective,
    limits: &Limits,
) -> wasmtime::Result<(WasiCtx, (MemoryOutputPipe, MemoryOutputPipe))> {
    let stdout = MemoryOutputPipe::new(limits.output_bytes);
    let stderr = MemoryOutputPipe::new(limits.output_bytes);
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone()).stderr(stderr.clone());
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (k, v) in &caps.env {
        b.env(k, v);
    }
    for (host, guest) in &caps.read_dirs {
        b.preopened_dir(host, guest, FsPerms::ReadOnly)?;
    }
    Ok((b.build(), (stdout, stderr)))
}

impl PluginState {
    fn cli(&mut self) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
        wasmtime_wasi::cli::WasiCliView::cli(self)
    }
    fn filesystem(&mut self) -> wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_> {
        wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(self)
    }
    fn clocks(&mut self) -> wasmtime_wasi::clocks::WasiClocksCtxView<'_> {
        wasmtime_wasi::clocks::WasiClocksView::clocks(self)
    }
}
