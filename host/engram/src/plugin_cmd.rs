//! `engram plugin list|build|inspect|load|swap`: work with plugin components.

use crate::locate::Places;
use anyhow::Context;
use clap::{Args, Subcommand};
use engram_plugins::{Grants, HostConfig, PluginHost, PluginKind, Services};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `engram plugin`.
#[derive(Args, Debug)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Name every plugin found with its slot (world), WIT version and component hash.
    List {
        /// Folder to scan (default: the built default plugins).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the default plugins from source (`cargo build --release` in `plugins/`).
    Build,
    /// Show a component's kind, version, hash, manifest, imports and exports.
    Inspect {
        /// The component (`.wasm`).
        path: PathBuf,
    },
    /// Load a component into a slot as the server would (compile or cache,
    /// version check, link with its granted capabilities, smoke call).
    Load {
        /// The slot kind: judge, recall-policy, capture, tool or agency.
        kind: PluginKind,
        /// The component (`.wasm`).
        path: PathBuf,
    },
    /// Hot-swap a slot of a running `engram serve` (uploads the component to
    /// `PUT /v1/plugins/{kind}`; in-flight calls finish on the old plugin).
    Swap {
        /// The slot kind: judge, recall-policy, capture or agency.
        kind: PluginKind,
        /// The component (`.wasm`).
        path: PathBuf,
        /// The server's base address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The server's admin token.
        #[arg(long, env = "ENGRAM_ADMIN_TOKEN")]
        admin_token: String,
    },
}

fn host(places: &Places) -> anyhow::Result<PluginHost> {
    let config = HostConfig {
        cache_dir: Some(places.data.join("plugin-cache")),
        pool_instances: 16,
        ..HostConfig::default()
    };
    Ok(PluginHost::new(config, Services::default())?)
}

/// Run `engram plugin …`.
pub fn run(places: &Places, args: &PluginArgs) -> anyhow::Result<()> {
    match &args.command {
        PluginCommand::List { dir } => list(places, dir.as_deref().unwrap_or(&places.plugins)),
        PluginCommand::Build => build(places),
        PluginCommand::Inspect { path } => inspect(places, path),
        PluginCommand::Load { kind, path } => load(places, *kind, path),
        PluginCommand::Swap {
            kind,
            path,
            server,
            admin_token,
        } => swap(*kind, path, server, admin_token),
    }
}

fn list(places: &Places, dir: &Path) -> anyhow::Result<()> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read {} (run `engram plugin build` first)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    paths.sort();
    let host = host(places)?;
    println!(
        "{:<22} {:<14} {:<8} {:<16} {:>9}  path",
        "plugin", "slot (world)", "wit", "hash", "bytes"
    );
    for path in paths {
        match host.inspect(&path) {
            Ok(i) => {
                let (slot, version) = match &i.detected {
                    Ok((kind, v)) => (kind.to_string(), v.to_string()),
                    Err(e) => ("-".to_string(), format!("unusable: {e}")),
                };
                println!(
                    "{:<22} {:<14} {:<8} {:<16} {:>9}  {}",
                    i.name,
                    slot,
                    version,
                    &i.hash[..16],
                    i.size,
                    path.display()
                );
            }
            Err(e) => println!("{:<22} error: {e}", path.display()),
        }
    }
    Ok(())
}

fn build(places: &Places) -> anyhow::Result<()> {
    let workspace = places.base.join("plugins");
    let status = std::process::Command::new("cargo")
        .current_dir(&workspace)
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release"])
        .status()
        .with_context(|| format!("cannot run cargo in {}", workspace.display()))?;
    anyhow::ensure!(
        status.success(),
        "building the plugins failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    println!("built into {}", places.plugins.display());
    Ok(())
}

fn inspect(places: &Places, path: &Path) -> anyhow::Result<()> {
    let i = host(places)?.inspect(path)?;
    println!("name:     {}", i.name);
    println!("hash:     {}", i.hash);
    println!("size:     {} bytes", i.size);
    match &i.detected {
        Ok((kind, v)) => println!("world:    {kind} (engram:plugin@{v})"),
        Err(e) => println!("world:    not loadable here: {e}"),
    }
    println!("compiled: {:?}", i.load_path);
    println!("asks:     {:?}", i.manifest.capabilities);
    println!("imports:");
    for n in &i.imports {
        println!("  {n}");
    }
    println!("exports:");
    for n in &i.exports {
        println!("  {n}");
    }
    Ok(())
}

fn load(places: &Places, kind: PluginKind, path: &Path) -> anyhow::Result<()> {
    let host = host(places)?;
    let t = Instant::now();
    let slot = host.load(kind, path, &Grants::default())?;
    let loaded = slot.current();
    println!(
        "loaded {} into the {kind} slot in {:.1} ms ({:?}); hash {}; smoke call passed",
        loaded.name,
        t.elapsed().as_secs_f64() * 1e3,
        loaded.load_path,
        loaded.hash
    );
    Ok(())
}

fn swap(kind: PluginKind, path: &Path, server: &str, admin_token: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "uploaded".into());
    let url = format!("{}/v1/plugins/{kind}", server.trim_end_matches('/'));
    let answer = ureq::put(&url)
        .set("Authorization", &format!("Bearer {admin_token}"))
        .set("X-Engram-Plugin-Name", &name)
        .set("Content-Type", "application/wasm")
        .send_bytes(&bytes);
    let body: serde_json::Value = match answer {
        Ok(response) => response
            .into_json()
            .context("the server's answer is not JSON")?,
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            anyhow::bail!("the server refused the swap ({code}): {text}");
        }
        Err(err) => anyhow::bail!("cannot reach {url}: {err} (is `engram serve` running there?)"),
    };
    println!(
        "swapped the {kind} slot: {} -> {} ({})",
        body["old_hash"].as_str().unwrap_or("?"),
        body["new_hash"].as_str().unwrap_or("?"),
        body["plugin"].as_str().unwrap_or(&name)
    );
    Ok(())
}
