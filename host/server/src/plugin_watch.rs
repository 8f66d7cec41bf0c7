//! Watching the plugins folder: when the component file a slot was loaded from changes on disk
//! (a rebuild, a copy over it), the slot is hot-swapped to the new build — compiled,
//! pre-instantiated and smoke-called first, in-flight calls finishing on the old plugin.
//!
//! Off by default (`engram serve --watch-plugins-ms 0`): no task is spawned. A file must look
//! the same on two polls in a row before it is loaded, so a half-written copy is never picked
//! up; a build that fails to load is logged and the old plugin keeps serving.

use crate::memory::MemoryServices;
use engram_plugins::{Grants, PluginKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a file looked like at one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok()?,
    })
}

/// One watched slot file.
struct Watched {
    kind: PluginKind,
    path: PathBuf,
    /// What was loaded (or last tried).
    loaded: Option<Stamp>,
    /// A change seen at the previous poll, waiting to be seen unchanged once more.
    pending: Option<Stamp>,
}

/// Start the watcher when `interval` is set and memory is on; `None` otherwise.
pub fn spawn(
    interval: Option<Duration>,
    memory: Option<Arc<MemoryServices>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = interval?;
    let memory = memory?;
    let mut watched: Vec<Watched> = memory
        .slot_files()
        .into_iter()
        .map(|(kind, path)| Watched {
            kind,
            loaded: stamp(&path),
            pending: None,
            path,
        })
        .collect();
    tracing::info!(
        every_ms = interval.as_millis() as u64,
        files = watched.len(),
        "watching the plugins folder for new builds"
    );
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for file in &mut watched {
                let now = stamp(&file.path);
                if now.is_none() || now == file.loaded {
                    file.pending = None;
                    continue;
                }
                if file.pending != now {
                    file.pending = now;
                    continue;
                }
                file.loaded = now;
                file.pending = None;
                let services = memory.clone();
                let (kind, path) = (file.kind, file.path.clone());
                let swapped = tokio::task::spawn_blocking(move || {
                    let slot = services
                        .slot(kind)
                        .ok_or_else(|| format!("no swappable slot for {kind}"))?;
                    slot.swap_path(&path, &Grants::default())
                        .map_err(|err| err.to_string())
                })
                .await;
                match swapped {
                    Ok(Ok(report)) => tracing::info!(
                        slot = %file.kind,
                        path = %file.path.display(),
                        old_hash = %report.old_hash,
                        new_hash = %report.new_hash,
                        "plugin hot-swapped from the plugins folder"
                    ),
                    Ok(Err(err)) => tracing::warn!(
                        slot = %file.kind,
                        path = %file.path.display(),
                        %err,
                        "new build refused; the old plugin keeps serving"
                    ),
                    Err(err) => tracing::warn!(%err, "the plugin swap task panicked"),
                }
            }
        }
    }))
}
