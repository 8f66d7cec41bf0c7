//! The CUDA C sources of `kernels/`, compiled by NVRTC at first use and cached as PTX by
//! content hash and target architecture.
//!
//! A machine without a usable NVRTC can load PTX prebuilt elsewhere instead: a folder named by
//! `$ENGRAM_PTX_DIR` ([`PTX_DIR_ENV`]) holding [`write_prebuilt`]'s files (the example
//! `prebuild_ptx` writes them; scripts/gpu-check.sh carries them to a lent GPU). Each file is
//! keyed by the hash of its translation unit, so a changed kernel never loads a stale file.

use crate::error::{contain, CudaError, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The prelude prepended to every kernel file (types, f16 conversion, reductions).
pub const PRELUDE: &str = include_str!("../../../kernels/common.cuh");

/// Name of the prelude file in `kernels/`.
pub const PRELUDE_FILE: &str = "common.cuh";

/// One kernel file of `kernels/`.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// File name inside `kernels/`.
    pub file: &'static str,
    /// Its text.
    pub text: &'static str,
}

/// Every kernel file, embedded in the binary.
pub const SOURCES: &[KernelSource] = &[
    KernelSource {
        file: "quant.cu",
        text: include_str!("../../../kernels/quant.cu"),
    },
    KernelSource {
        file: "norm.cu",
        text: include_str!("../../../kernels/norm.cu"),
    },
    KernelSource {
        file: "rope.cu",
        text: include_str!("../../../kernels/rope.cu"),
    },
    KernelSource {
        file: "attention.cu",
        text: include_str!("../../../kernels/attention.cu"),
    },
    KernelSource {
        file: "activation.cu",
        text: include_str!("../../../kernels/activation.cu"),
    },
    KernelSource {
        file: "sampling.cu",
        text: include_str!("../../../kernels/sampling.cu"),
    },
    KernelSource {
        file: "exact.cu",
        text: include_str!("../../../kernels/exact.cu"),
    },
];

/// The source by file name.
pub fn source(file: &str) -> Option<&'static KernelSource> {
    SOURCES.iter().find(|s| s.file == file)
}

/// The full translation unit NVRTC compiles for one file: the prelude, then the file.
pub fn unit(src: &KernelSource) -> String {
    format!(
        "#line 1 \"{PRELUDE_FILE}\"\n{PRELUDE}\n#line 1 \"{}\"\n{}",
        src.file, src.text
    )
}

/// Compiles one kernel file to PTX for `arch` (`compute_XY`). NVRTC must be loadable
/// ([`crate::loader::ensure_nvrtc`]).
pub fn compile(src: &KernelSource, arch: &str) -> Result<String> {
    let text = unit(src);
    contain("compiling a kernel with NVRTC", || {
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![
                format!("--gpu-architecture={arch}"),
                "--std=c++17".into(),
                // The exact islands use 128-bit integers (as host/exact does).
                "--device-int128".into(),
            ],
            name: Some(src.file.to_string()),
            ..Default::default()
        };
        match cudarc::nvrtc::compile_ptx_with_opts(&text, opts) {
            Ok(ptx) => Ok(ptx.to_src()),
            Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => Err(CudaError::Compile {
                file: src.file.into(),
                arch: arch.into(),
                log: log.to_string_lossy().into_owned(),
            }),
            Err(e) => Err(CudaError::Compile {
                file: src.file.into(),
                arch: arch.into(),
                log: e.to_string(),
            }),
        }
    })
}

/// Environment variable naming a folder of prebuilt PTX ([`write_prebuilt`]); a kernel found
/// there is loaded without NVRTC.
pub const PTX_DIR_ENV: &str = "ENGRAM_PTX_DIR";

/// The first 16 bytes of SHA-256 over `parts`, separated by NUL bytes, in hex.
fn hash_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0]);
        }
        h.update(p);
    }
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// File name of the prebuilt PTX of `src` for `arch`: `<stem>-<arch>-prebuilt-<unit hash>.ptx`.
pub fn prebuilt_name(src: &KernelSource, arch: &str) -> String {
    let stem = src.file.trim_end_matches(".cu");
    let key = hash_hex(&[unit(src).as_bytes(), arch.as_bytes()]);
    format!("{stem}-{arch}-prebuilt-{key}.ptx")
}

/// The prebuilt PTX of `src` for `arch` in `dir`, if that folder holds it for exactly this
/// source.
pub fn prebuilt(src: &KernelSource, arch: &str, dir: &Path) -> Option<String> {
    let path = dir.join(prebuilt_name(src, arch));
    let text = std::fs::read_to_string(&path).ok()?;
    tracing::debug!(path = %path.display(), "prebuilt PTX");
    Some(text)
}

/// Compiles every file of [`SOURCES`] for `arch` into `dir` under [`prebuilt_name`] (NVRTC
/// must be loadable); returns the files written.
pub fn write_prebuilt(dir: &Path, arch: &str) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for src in SOURCES {
        let ptx = compile(src, arch)?;
        let path = dir.join(prebuilt_name(src, arch));
        let io = |source| CudaError::Cache {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(&path, ptx).map_err(io)?;
        written.push(path);
    }
    Ok(written)
}

/// The cache key of one file for one architecture and NVRTC version: SHA-256 of all three
/// and the translation unit.
pub fn cache_key(src: &KernelSource, arch: &str, nvrtc: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(unit(src).as_bytes());
    h.update([0]);
    h.update(arch.as_bytes());
    h.update([0]);
    h.update(format!("{}.{}", nvrtc.0, nvrtc.1).as_bytes());
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// PTX for `src` on `arch`: read from `cache_dir` when present, else compiled and written there
/// (atomically: a temporary file renamed into place). `cache_dir = None` compiles every time.
pub fn ptx_cached(
    src: &KernelSource,
    arch: &str,
    nvrtc: (i32, i32),
    cache_dir: Option<&Path>,
) -> Result<String> {
    let Some(dir) = cache_dir else {
        return compile(src, arch);
    };
    let stem = src.file.trim_end_matches(".cu");
    let path: PathBuf = dir.join(format!("{stem}-{arch}-{}.ptx", cache_key(src, arch, nvrtc)));
    if let Ok(text) = std::fs::read_to_string(&path) {
        tracing::debug!(path = %path.display(), "PTX cache hit");
        return Ok(text);
    }
    let ptx = compile(src, arch)?;
    let io = |source| CudaError::Cache {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &ptx).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(ptx)
}
