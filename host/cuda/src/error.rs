//! Errors of the CUDA backend. Each says what is missing and what to do about it.

use std::path::PathBuf;

/// Why the CUDA backend cannot be used (or failed while running).
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The CUDA driver library (`libcuda`) is not installed or not on the loader path.
    #[error("no GPU found: the CUDA driver library (libcuda) is not installed; install an NVIDIA driver or use --device cpu")]
    NoDriver,
    /// The driver is present but reports no CUDA device.
    #[error("no GPU found: the CUDA driver reports no device ({0}); use --device cpu")]
    NoDevice(String),
    /// A driver call failed.
    #[error("CUDA driver error while {what}: {detail}")]
    Driver {
        /// What the backend was doing.
        what: &'static str,
        /// The driver's message.
        detail: String,
    },
    /// A driver or NVRTC call panicked inside cudarc (typically: a symbol missing from an old
    /// driver). The panic was contained.
    #[error("CUDA library failure while {what}: {detail} (the driver or NVRTC may be too old for CUDA 12.8; update it or use --device cpu)")]
    Panicked {
        /// What the backend was doing.
        what: &'static str,
        /// The panic message.
        detail: String,
    },
    /// NVRTC (`libnvrtc`) could not be found.
    #[error("NVRTC (libnvrtc) not found (searched the loader path and: {searched:?}); install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc-cu12` into .venv (scripts/setup-ci.sh does), or set ENGRAM_NVRTC to its lib folder (or ENGRAM_PTX_DIR to a folder of prebuilt PTX: `cargo run -p engram-cuda --example prebuild_ptx`)")]
    NvrtcMissing {
        /// Folders and files searched besides the loader path.
        searched: Vec<PathBuf>,
    },
    /// A kernel source failed to compile.
    #[error("NVRTC could not compile kernels/{file} for {arch}:\n{log}")]
    Compile {
        /// The kernel file.
        file: String,
        /// The target architecture (`compute_XY`).
        arch: String,
        /// The compiler log.
        log: String,
    },
    /// The model uses something this backend does not implement.
    #[error("the CUDA backend does not support {0}; use --device cpu")]
    Unsupported(String),
    /// Reading or writing the PTX cache failed.
    #[error("PTX cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CudaError {
    /// Wraps a driver error with what was being done.
    pub(crate) fn driver(what: &'static str, e: impl std::fmt::Display) -> CudaError {
        CudaError::Driver {
            what,
            detail: e.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = CudaError> = std::result::Result<T, E>;

/// Runs `f`, turning a panic inside cudarc (missing library or symbol) into an error.
pub(crate) fn contain<T>(what: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CudaError::Panicked { what, detail })
        }
    }
}
