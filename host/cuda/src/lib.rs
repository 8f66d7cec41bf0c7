//! Engram's CUDA backend, through cudarc with dynamic loading: nothing CUDA is needed to build
//! or test it, and a machine without a GPU gets clear errors instead of panics.
//!
//! - [`loader`]: finds `libcuda` and `libnvrtc` at run time (NVRTC also from the PyPI wheel in
//!   `.venv`) and checks their presence before cudarc's lazy loader would panic.
//! - [`device`]: `--device cpu | cuda | auto` and the GPU probe behind `engram info`.
//! - [`kernels`]: the CUDA C sources of the top-level `kernels/` folder, compiled by NVRTC at
//!   first use and cached as PTX by content hash and architecture.
//! - [`backend`]: [`CudaOps`], the engine's [`engram_engine::Ops`] on the GPU, so the engine's
//!   one model definition (`engram_engine::forward`) runs there unchanged.
//! - [`resident`]: [`CudaSession`], the device-resident state `CudaOps` gives every session:
//!   activations and KV cache on the GPU, the layer loop enqueued on one stream, only the
//!   outputs read back; snapshots move the cache to and from the host.
//! - [`exact`]: the exact-arithmetic islands as integer kernels, equal to `engram_exact` bit
//!   for bit; [`CudaExactOps`] runs the engine's `--exact` mode with them.
//! - [`select`]: builds the operators for a [`DeviceChoice`].

pub mod backend;
pub mod device;
mod error;
pub mod exact;
pub mod exact_ops;
pub mod kernels;
pub mod loader;
pub mod resident;
pub mod select;

pub use backend::{CudaOps, CudaOptions};
pub use device::{gpu_line, nvrtc_line, probe, DeviceChoice, GpuInfo};
pub use error::{CudaError, Result};
pub use exact_ops::CudaExactOps;
pub use resident::CudaSession;
pub use select::{ops_for, Selected};
