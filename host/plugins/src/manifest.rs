//! Plugin manifests (what a plugin asks for) and operator grants (what it may get).
//!
//! A manifest is a small TOML file next to the component (`judge-jaccard.toml`
//! beside `judge-jaccard.wasm`). A plugin gets a capability only when its
//! manifest asks for it **and** the operator's [`Grants`] allow it; everything
//! else is linked as a trap.

use crate::kind::PluginKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a plugin declares about itself.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name (defaults to the component's file stem).
    #[serde(default)]
    pub name: String,
    /// The kind (world) the plugin implements, if declared.
    #[serde(default)]
    pub kind: Option<String>,
    /// Free-form description.
    #[serde(default)]
    pub description: String,
    /// Capabilities the plugin asks for.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// WASI capabilities a plugin may ask for. None is granted by default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Guest paths of directories to read (each must be granted a host folder).
    #[serde(default)]
    pub read_dirs: Vec<String>,
    /// Names of environment variables to see (values come from the grants,
    /// never from the host's environment).
    #[serde(default)]
    pub env: Vec<String>,
    /// WASI wall and monotonic clocks (beyond the host `clock` import).
    #[serde(default)]
    pub clocks: bool,
    /// WASI random.
    #[serde(default)]
    pub random: bool,
}

/// What the operator allows one plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Guest path → host folder, preopened read-only.
    pub read_dirs: BTreeMap<String, PathBuf>,
    /// Environment variables the plugin may see, with their values.
    pub env: BTreeMap<String, String>,
    /// Allow WASI clocks.
    pub clocks: bool,
    /// Allow WASI random.
    pub random: bool,
}

/// The capabilities a plugin actually gets: manifest asks ∧ operator grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    /// Read-only preopens: (host folder, guest path).
    pub read_dirs: Vec<(PathBuf, String)>,
    /// Environment variables the plugin sees.
    pub env: Vec<(String, String)>,
    /// WASI clocks linked.
    pub clocks: bool,
    /// WASI random linked.
    pub random: bool,
}

impl Effective {
    /// Intersect a manifest's asks with the operator's grants for a kind.
    /// Judges and recall policies never get any capability.
    pub fn resolve(kind: PluginKind, asks: &Capabilities, grants: &Grants) -> Effective {
        if !kind.may_use_wasi() {
            return Effective::default();
        }
        Effective {
            read_dirs: asks
                .read_dirs
                .iter()
                .filter_map(|g| grants.read_dirs.get(g).map(|h| (h.clone(), g.clone())))
                .collect(),
            env: asks
                .env
                .iter()
                .filter_map(|k| grants.env.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
            clocks: asks.clocks && grants.clocks,
            random: asks.random && grants.random,
        }
    }
}

/// Error reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read plugin manifest {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("invalid plugin manifest {path}: {source} (see sdk/README.md for the format)")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
}

impl Manifest {
    /// Parse a manifest from TOML text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The manifest beside `component` (same stem, `.toml`), or an empty one
    /// named after the file when there is none.
    pub fn for_component(component: &Path) -> Result<Manifest, ManifestError> {
        let path = component.with_extension("toml");
        let mut manifest = match std::fs::read_to_string(&path) {
            Ok(text) => Manifest::from_toml(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        if manifest.name.is_empty() {
            manifest.name = component
                .file_stem()
                .map(|s| s.to_string_lossy().replace('_', "-"))
                .unwrap_or_default();
        }
        Ok(manifest)
    }
}
