//! Finding the model folder.

use std::path::{Path, PathBuf};

/// The model's folder name inside the models folder.
pub const MODEL_DIR_NAME: &str = "all-MiniLM-L6-v2";

/// Where the all-MiniLM-L6-v2 files are expected: `$ENGRAM_MODELS/all-MiniLM-L6-v2` when that
/// variable is set, else `models/all-MiniLM-L6-v2` of the Engram checkout (the first folder
/// holding `scripts/setup.sh`, searched upwards from the current directory, then from this
/// crate's source folder), else `models/all-MiniLM-L6-v2` relative to the current directory.
///
/// The folder is not checked here; [`Embedder::load`](crate::Embedder::load) reports missing
/// files, naming `scripts/setup.sh` as the way to fetch them.
pub fn default_model_dir() -> PathBuf {
    if let Some(models) = std::env::var_os("ENGRAM_MODELS").filter(|v| !v.is_empty()) {
        return PathBuf::from(models).join(MODEL_DIR_NAME);
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| checkout_root(&start))
        .unwrap_or_default()
        .join("models")
        .join(MODEL_DIR_NAME)
}

/// The nearest ancestor of `start` (itself included) that holds `scripts/setup.sh`.
fn checkout_root(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    start
        .ancestors()
        .find(|dir| dir.join("scripts/setup.sh").is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_checkout_root_from_this_crate() {
        let root = checkout_root(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("checkout root");
        assert!(root.join("scripts/setup.sh").is_file());
        assert!(checkout_root(Path::new("/")).is_none());
    }
}
