//! Finding the CUDA libraries at run time without ever letting cudarc's lazy loader panic.
//!
//! cudarc (feature `dynamic-loading`) opens `libcuda` / `libnvrtc` on the first call into them
//! and panics when they are absent. Everything here checks presence first:
//! [`driver_present`] for the driver, [`ensure_nvrtc`] for NVRTC.
//!
//! NVRTC need not be installed system-wide: the PyPI wheel `nvidia-cuda-nvrtc-cu12` (installed
//! into `.venv` by `scripts/setup-ci.sh`) ships `libnvrtc.so.12` and its builtins. The loader
//! path is fixed at process start, so [`ensure_nvrtc`] opens those files by absolute path and
//! keeps them loaded; cudarc's later `dlopen("libnvrtc.so.12")` then resolves to the loaded
//! library by its soname.

use crate::error::{CudaError, Result};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Environment variable naming NVRTC's lib folder (or the `libnvrtc` file itself).
pub const NVRTC_ENV: &str = "ENGRAM_NVRTC";

/// Where the PyPI wheel puts NVRTC, relative to a virtual environment's `site-packages`.
const WHEEL_LIB: &str = "nvidia/cuda_nvrtc/lib";

/// True when the CUDA driver library can be opened.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names; calls nothing inside.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Libraries opened by absolute path, kept loaded for the life of the process.
fn kept() -> &'static Mutex<Vec<libloading::Library>> {
    static KEPT: OnceLock<Mutex<Vec<libloading::Library>>> = OnceLock::new();
    KEPT.get_or_init(|| Mutex::new(Vec::new()))
}

/// NVRTC lib folders of `.venv` virtual environments in `start` and its ancestors.
pub fn venv_nvrtc_dirs(start: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in start.ancestors() {
        let lib = dir.join(".venv/lib");
        let Ok(entries) = std::fs::read_dir(&lib) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("site-packages").join(WHEEL_LIB))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// The places [`ensure_nvrtc`] looks besides the loader path: `$ENGRAM_NVRTC`, then `.venv`
/// folders above the current directory, above the executable, and above `extra`.
pub fn nvrtc_search_paths(extra: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(v) = std::env::var_os(NVRTC_ENV).filter(|v| !v.is_empty()) {
        paths.push(PathBuf::from(v));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.extend(exe.parent().map(Path::to_path_buf));
    }
    starts.extend(extra.map(Path::to_path_buf));
    for s in starts {
        for d in venv_nvrtc_dirs(&s) {
            if !paths.contains(&d) {
                paths.push(d);
            }
        }
    }
    paths
}

/// Opens the NVRTC libraries of one folder (builtins first, then `libnvrtc.so*`), or one file.
fn preload(path: &Path) -> bool {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // The `.alt` variants are alternative builds of the same sonames: skip them.
    files.retain(|p| {
        let n = name(p);
        n.starts_with("libnvrtc") && n.contains(".so") && !n.contains(".alt.")
    });
    files.sort_by_key(|p| (!name(p).contains("builtins"), name(p)));
    let mut opened_main = false;
    let mut keep = kept().lock().unwrap_or_else(|e| e.into_inner());
    for f in files {
        // SAFETY: NVRTC's initialisers have no preconditions; the handle is kept forever.
        match unsafe { libloading::Library::new(&f) } {
            Ok(lib) => {
                opened_main |= !name(&f).contains("builtins");
                keep.push(lib);
            }
            Err(e) => {
                tracing::debug!(file = %f.display(), error = %e, "could not open NVRTC candidate")
            }
        }
    }
    opened_main
}

/// Makes NVRTC loadable: succeeds at once when the loader path has it, otherwise preloads it
/// from [`nvrtc_search_paths`] (`extra` adds one more start folder for the `.venv` search).
pub fn ensure_nvrtc(extra: Option<&Path>) -> Result<()> {
    // SAFETY: only tries to dlopen the candidate names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Ok(());
    }
    let searched = nvrtc_search_paths(extra);
    for p in &searched {
        // SAFETY: as above.
        if preload(p) && unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            tracing::debug!(path = %p.display(), "NVRTC preloaded");
            return Ok(());
        }
    }
    Err(CudaError::NvrtcMissing { searched })
}

/// NVRTC's version `(major, minor)`; call after [`ensure_nvrtc`].
pub fn nvrtc_version() -> Result<(i32, i32)> {
    crate::error::contain("asking NVRTC for its version", || {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: NVRTC is loadable (checked by the caller); two out-pointers.
        let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(CudaError::Panicked {
                what: "asking NVRTC for its version",
                detail: format!("{r:?}"),
            });
        }
        Ok((major, minor))
    })
}
