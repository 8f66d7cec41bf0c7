//! Building the engine's operators for a `--device` choice.

use crate::backend::{CudaOps, CudaOptions};
use crate::device::DeviceChoice;
use crate::error::Result;
use engram_engine::{CpuOps, Ops};
use std::sync::Arc;

/// The operators chosen for a command, and a line saying what they are.
pub struct Selected {
    /// The operators to pass to `Model::load_with`.
    pub ops: Arc<dyn Ops>,
    /// E.g. "cpu (2 threads)", "cuda: NVIDIA H200 (...)", or "cpu (auto: no GPU found: ...)".
    pub description: String,
    /// True when the GPU is used.
    pub on_gpu: bool,
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// The operators for `choice`: `Cpu` → [`CpuOps`] with `threads` (0 = all cores); `Cuda` →
/// [`CudaOps`] or the error saying why not; `Auto` → CUDA when it works, else the CPU (the
/// reason is logged and put in the description). Never panics.
pub fn ops_for(choice: DeviceChoice, threads: usize, opts: &CudaOptions) -> Result<Selected> {
    let cpu = |why: Option<String>| {
        let ops = CpuOps::new(threads);
        let base = format!(
            "cpu ({} threads, {:?} kernels)",
            ops.n_threads(),
            ops.kernels().isa
        );
        Selected {
            ops: Arc::new(ops),
            description: match why {
                Some(w) => format!("{base}; auto: {w}"),
                None => base,
            },
            on_gpu: false,
        }
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu(None)),
        DeviceChoice::Cuda => {
            let ops = CudaOps::new(opts)?;
            Ok(Selected {
                description: format!("cuda: {}", ops.gpu()),
                ops: Arc::new(ops),
                on_gpu: true,
            })
        }
        DeviceChoice::Auto => match CudaOps::new(opts) {
            Ok(ops) => Ok(Selected {
                description: format!("cuda: {}", ops.gpu()),
                ops: Arc::new(ops),
                on_gpu: true,
            }),
            Err(e) => {
                tracing::info!(reason = %e, "--device auto: using the CPU");
                Ok(cpu(Some(e.to_string())))
            }
        },
    }
}
