//! Device selection (`cpu | cuda | auto`) and the GPU probe behind `engram info`.

use crate::error::{contain, CudaError, Result};
use crate::loader::driver_present;
use cudarc::driver::CudaContext;
use std::sync::Arc;

/// Which device a command computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU kernels (the default).
    #[default]
    Cpu,
    /// The first CUDA device; an error when there is none.
    Cuda,
    /// The first CUDA device when there is one, else the CPU.
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(format!(
                "unknown device {other:?}: expected cpu, cuda or auto"
            )),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        })
    }
}

/// What the probe found about GPU 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Device name, e.g. "NVIDIA H200".
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_mem: usize,
    /// Driver API version (e.g. 12080 for 12.8).
    pub driver_version: i32,
    /// Number of CUDA devices.
    pub device_count: i32,
}

impl GpuInfo {
    /// The NVRTC architecture option for this device, e.g. `compute_90`.
    pub fn arch(&self) -> String {
        format!(
            "compute_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (compute {}.{}, {:.1} GiB, driver API {}.{}, {} device(s))",
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.total_mem as f64 / (1u64 << 30) as f64,
            self.driver_version / 1000,
            self.driver_version % 1000 / 10,
            self.device_count
        )
    }
}

/// Opens the primary context of device 0, checking first that the driver exists and has a
/// device. Never panics: a missing library or symbol becomes an error.
pub fn open_device() -> Result<(Arc<CudaContext>, GpuInfo)> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    contain("opening CUDA device 0", || {
        let count = CudaContext::device_count().map_err(|e| CudaError::NoDevice(e.to_string()))?;
        if count < 1 {
            return Err(CudaError::NoDevice("0 devices".into()));
        }
        let mut driver_version = 0;
        // SAFETY: the driver is loaded and initialised (device_count called cuInit).
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) };
        let ctx = CudaContext::new(0)
            .map_err(|e| CudaError::driver("creating a context on device 0", e))?;
        let info = GpuInfo {
            name: ctx
                .name()
                .map_err(|e| CudaError::driver("reading the device name", e))?,
            compute_capability: ctx
                .compute_capability()
                .map_err(|e| CudaError::driver("reading the compute capability", e))?,
            total_mem: ctx
                .total_mem()
                .map_err(|e| CudaError::driver("reading the device memory", e))?,
            driver_version,
            device_count: count,
        };
        Ok((ctx, info))
    })
}

/// Probes for a GPU: its description, or why there is none (`engram info` prints either).
pub fn probe() -> Result<GpuInfo> {
    open_device().map(|(_, info)| info)
}

/// One line for `engram info`: the GPU found, or `no GPU found: <reason>`.
pub fn gpu_line() -> String {
    match probe() {
        Ok(gpu) => format!("{gpu} (arch {})", gpu.arch()),
        Err(e @ (CudaError::NoDriver | CudaError::NoDevice(_))) => e.to_string(),
        Err(e) => format!("no GPU found: {e}"),
    }
}

/// One line for `engram info`: NVRTC's version, or why it is unavailable.
pub fn nvrtc_line(search_from: Option<&std::path::Path>) -> String {
    match crate::loader::ensure_nvrtc(search_from).and_then(|()| crate::loader::nvrtc_version()) {
        Ok((major, minor)) => format!("NVRTC {major}.{minor} (kernels compile at first use)"),
        Err(e) => e.to_string(),
    }
}
