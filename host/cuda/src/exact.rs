//! The exact-arithmetic islands on the GPU (`kernels/exact.cu`): integer ports of
//! `engram_exact` that must give the same bits. [`CudaExact`] launches them on host buffers;
//! `tests/gpu_parity.rs` checks each against `engram_exact` on a GPU.
//!
//! Not yet done: an exact forward pass on the GPU (the exact quantized matrix product and the
//! wiring of these islands through the engine's exact operators); `--exact` runs on the CPU.

use crate::backend::{load_functions, CudaOptions};
use crate::device::{open_device, GpuInfo};
use crate::error::{CudaError, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use std::collections::HashMap;
use std::sync::Arc;

const ENTRY_POINTS: &[(&str, &[&str])] = &[(
    "exact.cu",
    &[
        "exact_silu",
        "exact_swiglu",
        "exact_rms_norm",
        "exact_rope",
        "exact_quantize_act",
        "exact_attention",
    ],
)];

/// Power-of-two-scaled int8 blocks of 32 (as `engram_exact::Q8Block`, struct of arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedAct {
    /// 32 quants per block.
    pub qs: Vec<i8>,
    /// Sum of each block's quants.
    pub sums: Vec<i16>,
    /// Each block's scale exponent.
    pub shifts: Vec<u8>,
}

/// The exact islands' kernels on CUDA device 0.
pub struct CudaExact {
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    info: GpuInfo,
    functions: HashMap<&'static str, CudaFunction>,
}

impl std::fmt::Debug for CudaExact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaExact({})", self.info)
    }
}

fn cfg(grid: (u32, u32), block: u32, shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.0.max(1), grid.1.max(1), 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: shared,
    }
}

fn drv(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::driver(what, e)
}

impl CudaExact {
    /// Opens device 0 and loads `kernels/exact.cu`; errors (never panics) without a GPU.
    pub fn new(opts: &CudaOptions) -> Result<CudaExact> {
        let (ctx, info) = open_device()?;
        let functions = load_functions(&ctx, &info, ENTRY_POINTS, opts)?;
        Ok(CudaExact {
            stream: ctx.default_stream(),
            _ctx: ctx,
            info,
            functions,
        })
    }

    fn up<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(host)
            .map_err(drv("copying to the device"))
    }

    fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(n.max(1))
            .map_err(drv("allocating device memory"))
    }

    fn down<T: DeviceRepr>(&self, dev: &CudaSlice<T>, n: usize) -> Result<Vec<T>> {
        let mut v = self
            .stream
            .clone_dtoh(dev)
            .map_err(drv("copying from the device"))?;
        v.truncate(n);
        Ok(v)
    }

    fn builder(&self, name: &str) -> Result<cudarc::driver::LaunchArgs<'_>> {
        let f = self
            .functions
            .get(name)
            .ok_or_else(|| CudaError::Unsupported(format!("kernel {name}")))?;
        Ok(self.stream.launch_builder(f))
    }

    fn go(&self, b: &mut cudarc::driver::LaunchArgs<'_>, c: LaunchConfig) -> Result<()> {
        // SAFETY: each caller pushes exactly the kernel's parameters, buffers sized to match.
        unsafe { b.launch(c) }.map_err(drv("launching an exact kernel"))?;
        self.stream.synchronize().map_err(drv("synchronising"))
    }

    /// `engram_exact::silu_inplace`.
    pub fn silu(&self, x: &mut [i32]) -> Result<()> {
        let mut d = self.up(x)?;
        let n = x.len() as i32;
        let mut b = self.builder("exact_silu")?;
        b.arg(&mut d).arg(&n);
        self.go(&mut b, cfg(((x.len() as u32).div_ceil(256), 1), 256, 0))?;
        x.copy_from_slice(&self.down(&d, x.len())?);
        Ok(())
    }

    /// `engram_exact::swiglu`.
    pub fn swiglu(&self, gate: &[i32], up: &[i32]) -> Result<Vec<i32>> {
        let (g, u) = (self.up(gate)?, self.up(up)?);
        let mut o = self.zeros::<i32>(gate.len())?;
        let n = gate.len() as i32;
        let mut b = self.builder("exact_swiglu")?;
        b.arg(&g).arg(&u).arg(&mut o).arg(&n);
        self.go(&mut b, cfg(((gate.len() as u32).div_ceil(256), 1), 256, 0))?;
        self.down(&o, gate.len())
    }

    /// `engram_exact::rms_norm` of each row of `weight.len()` values.
    pub fn rms_norm(&self, x: &[i32], weight: &[i32], eps_q32: u64) -> Result<Vec<i32>> {
        let d = weight.len();
        let (xd, wd) = (self.up(x)?, self.up(weight)?);
        let mut o = self.zeros::<i32>(x.len())?;
        let di = d as i32;
        let mut b = self.builder("exact_rms_norm")?;
        b.arg(&xd).arg(&wd).arg(&eps_q32).arg(&di).arg(&mut o);
        self.go(&mut b, cfg(((x.len() / d) as u32, 1), 256, 0))?;
        self.down(&o, x.len())
    }

    /// RoPE of rows of `n_heads × head_dim` values, row `r` rotated by `cos/sin[r·half..]`
    /// (`half = head_dim / 2`, from `engram_exact::RopeTable`); `neox` selects
    /// `rope_neox`, else `rope_adjacent`.
    pub fn rope(
        &self,
        x: &mut [i32],
        cos: &[i32],
        sin: &[i32],
        n_heads: usize,
        head_dim: usize,
        neox: bool,
    ) -> Result<()> {
        let half = head_dim / 2;
        let rows = x.len() / (n_heads * head_dim);
        let mut xd = self.up(x)?;
        let (cd, sd) = (self.up(cos)?, self.up(sin)?);
        let (nh, hd, hf, lay) = (n_heads as i32, head_dim as i32, half as i32, neox as i32);
        let mut b = self.builder("exact_rope")?;
        b.arg(&mut xd)
            .arg(&cd)
            .arg(&sd)
            .arg(&nh)
            .arg(&hd)
            .arg(&hf)
            .arg(&lay);
        self.go(&mut b, cfg((rows as u32, n_heads as u32), half as u32, 0))?;
        x.copy_from_slice(&self.down(&xd, x.len())?);
        Ok(())
    }

    /// `engram_exact::quantize_act`.
    pub fn quantize_act(&self, x: &[i32]) -> Result<QuantizedAct> {
        let nb = x.len() / 32;
        let xd = self.up(x)?;
        let (mut qs, mut sums, mut shifts) = (
            self.zeros::<i8>(x.len())?,
            self.zeros::<i16>(nb)?,
            self.zeros::<u8>(nb)?,
        );
        let n = nb as i32;
        let mut b = self.builder("exact_quantize_act")?;
        b.arg(&xd)
            .arg(&n)
            .arg(&mut qs)
            .arg(&mut sums)
            .arg(&mut shifts);
        self.go(&mut b, cfg(((nb as u32).div_ceil(128), 1), 128, 0))?;
        Ok(QuantizedAct {
            qs: self.down(&qs, x.len())?,
            sums: self.down(&sums, nb)?,
            shifts: self.down(&shifts, nb)?,
        })
    }

    /// Causal exact attention (`engram_exact::attend` per query and head) of `n_tokens` new
    /// queries at `pos0..` over a cache of `pos0 + n_tokens` positions.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &[i32],
        k: &[i32],
        v: &[i32],
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        pos0: usize,
        scale_q30: u32,
    ) -> Result<Vec<i32>> {
        let n_tokens = q.len() / (n_head * head_dim);
        let shared = ((pos0 + n_tokens) * 4) as u32;
        let (qd, kd, vd) = (self.up(q)?, self.up(k)?, self.up(v)?);
        let mut o = self.zeros::<i32>(q.len())?;
        let (nh, nkv, hd, p0) = (
            n_head as i32,
            n_head_kv as i32,
            head_dim as i32,
            pos0 as i32,
        );
        let mut b = self.builder("exact_attention")?;
        b.arg(&qd)
            .arg(&kd)
            .arg(&vd)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd)
            .arg(&p0)
            .arg(&scale_q30)
            .arg(&mut o);
        self.go(&mut b, cfg((n_tokens as u32, n_head as u32), 128, shared))?;
        self.down(&o, q.len())
    }
}
