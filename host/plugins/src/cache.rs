//! On-disk cache of compiled components (`.cwasm`).
//!
//! Entries are keyed by the SHA-256 of the component bytes and the engine's
//! compatibility hash (wasmtime version + every `Config` setting that changes
//! code, e.g. fuel on/off). Each entry has a sidecar holding the SHA-256 of
//! the compiled bytes, written by the host; an entry whose bytes do not match
//! its sidecar is discarded and recompiled, so only files this host wrote are
//! ever deserialized. The folder should be private to the host (it is created
//! with mode 0700 on Unix).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a component came from when it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPath {
    /// Compiled now (cache off, miss, or invalid entry).
    Compiled,
    /// Deserialized from a cache entry this host wrote.
    Cached,
}

/// The compiled-component cache.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// Error using the cache folder.
#[derive(Debug, thiserror::Error)]
#[error("plugin cache folder {path}: {source}")]
pub struct CacheError {
    /// The folder or file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

impl CompileCache {
    /// A cache in `dir` (created if missing), or a disabled one for `None`.
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Result<CompileCache, CacheError> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|source| CacheError {
                path: dir.to_path_buf(),
                source,
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompileCache {
            dir: dir.map(Path::to_path_buf),
            engine_key: format!("{:016x}", h.finish()),
        })
    }

    /// The engine compatibility key used in entry names.
    pub fn engine_key(&self) -> &str {
        &self.engine_key
    }

    fn entry(&self, content_hash: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.dir.as_ref()?;
        let stem = format!("{content_hash}-{}", self.engine_key);
        Some((
            dir.join(format!("{stem}.cwasm")),
            dir.join(format!("{stem}.cwasm.sha256")),
        ))
    }

    /// Load the component for `bytes` (whose hash is `content_hash`), from the
    /// cache when a valid entry exists, else by compiling (and storing it).
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        content_hash: &str,
    ) -> wasmtime::Result<(Component, LoadPath)> {
        let Some((cwasm, sidecar)) = self.entry(content_hash) else {
            return Ok((Component::new(engine, bytes)?, LoadPath::Compiled));
        };
        if let (Ok(compiled), Ok(expected)) =
            (std::fs::read(&cwasm), std::fs::read_to_string(&sidecar))
        {
            if sha256_hex(&compiled) == expected.trim()
                && matches!(
                    Engine::detect_precompiled(&compiled),
                    Some(wasmtime::Precompiled::Component)
                )
            {
                // SAFETY: the bytes were produced by `Engine::precompile_component`
                // of this host (the sidecar digest it wrote matches) for an
                // engine with the same compatibility hash (part of the name).
                match unsafe { Component::deserialize(engine, &compiled) } {
                    Ok(c) => return Ok((c, LoadPath::Cached)),
                    Err(e) => {
                        tracing::warn!(path = %cwasm.display(), "discarding cache entry: {e}")
                    }
                }
            } else {
                tracing::warn!(path = %cwasm.display(), "discarding cache entry that does not match its digest");
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        // SAFETY: produced just above by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        let tmp = cwasm.with_extension("cwasm.tmp");
        let written = std::fs::write(&tmp, &compiled)
            .and_then(|_| std::fs::write(&sidecar, sha256_hex(&compiled)))
            .and_then(|_| std::fs::rename(&tmp, &cwasm));
        if let Err(e) = written {
            tracing::warn!(path = %cwasm.display(), "could not write plugin cache entry: {e}");
        }
        Ok((component, LoadPath::Compiled))
    }
}
