//! Where Engram's files live: the models folder, the data folder and the built plugins.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The folders one `engram` invocation works with.
#[derive(Debug, Clone)]
pub struct Places {
    /// Folder holding model files (`models/` of the checkout unless configured).
    pub models: PathBuf,
    /// Folder holding the memory store, session snapshots and caches.
    pub data: PathBuf,
    /// Folder holding the plugin components the server loads (the default plugins' build
    /// folder unless configured).
    pub plugins: PathBuf,
    /// The checkout (or working directory) the other folders were derived from.
    pub base: PathBuf,
}

impl Places {
    /// Resolve the folders from explicit settings, falling back to the checkout the
    /// binary was built from (found by walking up from the current directory and from
    /// the executable to a folder containing `scripts/setup.sh`).
    pub fn resolve(
        models: Option<PathBuf>,
        data: Option<PathBuf>,
        plugins: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let root = checkout_root();
        let base = match &root {
            Some(root) => root.clone(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        Ok(Self {
            models: models.unwrap_or_else(|| base.join("models")),
            data: data.unwrap_or_else(|| base.join("data")),
            plugins: plugins.unwrap_or_else(|| base.join("plugins/target/wasm32-wasip2/release")),
            base,
        })
    }

    /// Folder holding the example plugins in other languages (`examples/`) once built:
    /// the `language_judges` test and the examples' build scripts write their components here.
    pub fn example_components(&self) -> PathBuf {
        self.base.join("plugins/target/examples")
    }

    /// Folder for generated artifacts (benchmark JSON, screenshots); git-ignored.
    pub fn artifacts(&self) -> PathBuf {
        self.base.join("artifacts")
    }
}

/// The Engram checkout containing the current directory or the running executable.
fn checkout_root() -> Option<PathBuf> {
    let from_cwd = std::env::current_dir().ok();
    let from_exe = std::env::current_exe().ok();
    [from_cwd, from_exe]
        .into_iter()
        .flatten()
        .find_map(|start| find_upwards(&start))
}

fn find_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("scripts/setup.sh").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}
