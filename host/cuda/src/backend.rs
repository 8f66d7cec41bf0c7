//! [`CudaOps`]: the engine's [`Ops`] computed on the GPU.
//!
//! The engine's one model definition (`engram_engine::forward`) calls these operators exactly
//! as it calls the CPU ones, so generation, sessions, snapshots and the server run on CUDA
//! unchanged. What lives on the device:
//!
//! - **weights**: every matrix is uploaded once, at its first use, in its GGUF block format
//!   (keyed by its address inside the model's mapping: one `CudaOps` serves one model, as
//!   `Model::load_with` arranges), and so are the RMSNorm weights;
//! - **compute**: activation quantization, the quantized products, RMSNorm, RoPE, attention and
//!   SwiGLU all run as kernels of `kernels/`.
//!
//! Sessions do not go through these host-slice operators: [`CudaOps`] offers every session a
//! device-resident state ([`crate::resident::CudaSession`], through the engine's
//! `Ops::device_session`) that keeps the activations and the KV cache on the GPU, so the
//! engine's layer loop only enqueues kernels on one stream and a pass reads back only its
//! hidden states and logits. The host-slice operators below — each copies its inputs in and its
//! result out — serve direct `forward` calls, the operator tests, and sessions when
//! [`CudaOps::set_resident`] turned the resident path off (for comparisons).
//!
//! The seam has no error channel: a driver failure in the middle of a forward pass panics
//! with the driver's message. Everything that can be checked up front — driver, device, NVRTC,
//! compiling and loading every kernel — is checked by [`CudaOps::new`], which returns errors.

use crate::device::{open_device, GpuInfo};
use crate::error::{contain, CudaError, Result};
use crate::kernels;
use crate::loader;
use crate::resident::CudaSession;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchArgs,
    LaunchConfig, PushKernelArg,
};
use engram_engine::forward::DeviceState;
use engram_engine::model::{Model, RopeLayout, Weight};
use engram_engine::ops::AttnShape;
use engram_engine::quant::{ActType, GgmlType};
use engram_engine::Ops;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Options of [`CudaOps::new`].
#[derive(Debug, Clone, Default)]
pub struct CudaOptions {
    /// Where compiled PTX is cached (`None`: compile at every start).
    pub ptx_cache: Option<PathBuf>,
    /// A folder to start the `.venv` search for NVRTC from (besides the working directory and
    /// the executable's folder).
    pub nvrtc_search_from: Option<PathBuf>,
}

/// Names of every kernel entry point the backend launches, by file.
const ENTRY_POINTS: &[(&str, &[&str])] = &[
    (
        "quant.cu",
        &[
            "quantize_act",
            "mul_mat_q4_0",
            "mul_mat_q4_1",
            "mul_mat_q5_0",
            "mul_mat_q8_0",
            "mul_mat_q4k",
            "mul_mat_q6k",
            "mul_mat_f32",
            "mul_mat_f16",
        ],
    ),
    ("norm.cu", &["rms_norm_f32"]),
    ("rope.cu", &["rope_f32"]),
    ("attention.cu", &["attention_f32"]),
    ("activation.cu", &["swiglu_f32", "add_bias_f32", "add_f32"]),
    ("sampling.cu", &["argmax_f32"]),
];

/// Weight rows handled by one block of the product kernels (kernels/quant.cu ROWS_PER_BLOCK).
const ROWS_PER_BLOCK: u32 = 4;
/// Tokens handled by one block of the product kernels (kernels/quant.cu TOK).
const TOK: u32 = 8;
/// Dynamic shared memory available to attention without opting in to more.
pub(crate) const MAX_SHARED: usize = 48 * 1024;

/// The `attention_f32` kernel's scalar arguments and launch shape for one call, shared by the
/// per-operator path and the device-resident sessions.
pub(crate) struct AttentionLaunch {
    pub(crate) n_head: i32,
    pub(crate) n_head_kv: i32,
    pub(crate) head_dim: i32,
    pub(crate) pos0: i32,
    pub(crate) scale: f32,
    pub(crate) cfg: LaunchConfig,
}

impl AttentionLaunch {
    /// The launch for `s`; fails (contained, like every launch error) when the scores of the
    /// whole context do not fit in [`MAX_SHARED`].
    pub(crate) fn new(s: &AttnShape) -> AttentionLaunch {
        let hd = s.head_dim;
        let shared = (hd + s.pos0 + s.n_tokens) * 4;
        if shared > MAX_SHARED {
            fail(
                "attention",
                format!(
                    "a context of {} positions needs {shared} bytes of shared memory (at most \
                     {MAX_SHARED}); use a shorter context or --device cpu",
                    s.pos0 + s.n_tokens
                ),
            );
        }
        AttentionLaunch {
            n_head: s.n_head as i32,
            n_head_kv: s.n_head_kv as i32,
            head_dim: hd as i32,
            pos0: s.pos0 as i32,
            scale: 1.0 / (hd as f32).sqrt(),
            cfg: LaunchConfig {
                grid_dim: (s.n_tokens as u32, s.n_head as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: shared as u32,
            },
        }
    }
}

/// Device buffers reused across calls (grown, never shrunk).
#[derive(Default)]
struct Buffers {
    x: Option<CudaSlice<f32>>,
    out: Option<CudaSlice<f32>>,
    act: ActScratch,
    k: Option<CudaSlice<f32>>,
    v: Option<CudaSlice<f32>>,
}

/// Quantized activations of one product's input (kernels/quant.cu's device layout).
#[derive(Default)]
pub(crate) struct ActScratch {
    aq: Option<CudaSlice<i8>>,
    ad: Option<CudaSlice<f32>>,
    asum: Option<CudaSlice<f32>>,
    bsums: Option<CudaSlice<i16>>,
}

/// Makes `slot` hold at least `len` elements.
pub(crate) fn fit<'a, T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &'a mut Option<CudaSlice<T>>,
    len: usize,
) -> &'a mut CudaSlice<T> {
    let len = len.max(1);
    if slot.as_ref().is_none_or(|s| s.len() < len) {
        *slot = Some(
            stream
                .alloc_zeros::<T>(len.next_power_of_two())
                .unwrap_or_else(|e| fail("allocating device memory", e)),
        );
    }
    slot.as_mut().expect("just allocated")
}

/// A driver failure inside an operator: the seam has no error channel (see the module docs).
pub(crate) fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("CUDA backend: {what} failed: {e} (rerun with --device cpu)")
}

/// What every user of one device shares: the context, the stream every kernel is enqueued
/// on, the loaded kernels and the weights uploaded once (keyed by their host address and
/// length inside the model's mapping: one backend serves one model).
pub(crate) struct Shared {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) info: GpuInfo,
    functions: HashMap<&'static str, CudaFunction>,
    weights: Mutex<Uploads<u8>>,
    vectors: Mutex<Uploads<f32>>,
}

/// Device copies of host data, by the host slice's address and length.
pub(crate) type Uploads<T> = HashMap<(usize, usize), Arc<CudaSlice<T>>>;

impl Shared {
    pub(crate) fn func(&self, name: &str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| fail("finding a kernel", format!("{name} was not loaded")))
    }

    pub(crate) fn builder(&self, name: &str) -> LaunchArgs<'_> {
        self.stream.launch_builder(self.func(name))
    }

    /// The device copy of a weight's bytes, uploaded at its first use.
    pub(crate) fn weight(&self, bytes: &[u8]) -> Arc<CudaSlice<u8>> {
        let key = (bytes.as_ptr() as usize, bytes.len());
        let mut map = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                Arc::new(
                    self.stream
                        .clone_htod(bytes)
                        .unwrap_or_else(|e| fail("uploading a weight", e)),
                )
            })
            .clone()
    }

    /// The device copy of a norm weight or bias, uploaded at its first use.
    pub(crate) fn vector(&self, v: &[f32]) -> Arc<CudaSlice<f32>> {
        let key = (v.as_ptr() as usize, v.len());
        let mut map = self.vectors.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                Arc::new(
                    self.stream
                        .clone_htod(v)
                        .unwrap_or_else(|e| fail("uploading a norm weight", e)),
                )
            })
            .clone()
    }
}

/// The engine's operators on CUDA device 0.
pub struct CudaOps {
    sh: Arc<Shared>,
    buf: Mutex<Buffers>,
    resident: bool,
}

impl std::fmt::Debug for CudaOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaOps({})", self.sh.info)
    }
}

/// Compiles (or reads from the PTX cache, or from the prebuilt PTX of `$ENGRAM_PTX_DIR`) the
/// kernel files named in `entry_points` for the device's architecture, loads them into `ctx`
/// and returns their entry points by name.
pub(crate) fn load_functions(
    ctx: &Arc<CudaContext>,
    info: &GpuInfo,
    entry_points: &[(&str, &[&'static str])],
    opts: &CudaOptions,
) -> Result<HashMap<&'static str, CudaFunction>> {
    let arch = info.arch();
    let prebuilt_dir = std::env::var_os(kernels::PTX_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    // NVRTC is opened at the first kernel that has no prebuilt PTX.
    let mut nvrtc = None;
    let mut functions = HashMap::new();
    for (file, names) in entry_points {
        let src = kernels::source(file)
            .ok_or_else(|| CudaError::Unsupported(format!("missing kernel file {file}")))?;
        let ptx = match prebuilt_dir
            .as_deref()
            .and_then(|d| kernels::prebuilt(src, &arch, d))
        {
            Some(ptx) => ptx,
            None => {
                let version = match nvrtc {
                    Some(v) => v,
                    None => {
                        loader::ensure_nvrtc(opts.nvrtc_search_from.as_deref())?;
                        let v = loader::nvrtc_version()?;
                        nvrtc = Some(v);
                        v
                    }
                };
                kernels::ptx_cached(src, &arch, version, opts.ptx_cache.as_deref())?
            }
        };
        let module = contain("loading a kernel module", || {
            ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                .map_err(|e| CudaError::driver("loading a kernel module", e))
        })?;
        for name in names.iter() {
            let f = module
                .load_function(name)
                .map_err(|e| CudaError::driver("loading a kernel entry point", e))?;
            functions.insert(*name, f);
        }
    }
    Ok(functions)
}

impl CudaOps {
    /// Opens device 0, makes NVRTC loadable, compiles (or loads from the cache) every kernel
    /// file for the device's architecture and loads every entry point. Fails with a clear
    /// error — never panics — when there is no driver, no device or no NVRTC.
    pub fn new(opts: &CudaOptions) -> Result<CudaOps> {
        let (ctx, info) = open_device()?;
        let functions = load_functions(&ctx, &info, ENTRY_POINTS, opts)?;
        let stream = ctx.default_stream();
        tracing::info!(gpu = %info, "CUDA backend ready");
        Ok(CudaOps {
            sh: Arc::new(Shared {
                ctx,
                stream,
                info,
                functions,
                weights: Mutex::new(HashMap::new()),
                vectors: Mutex::new(HashMap::new()),
            }),
            buf: Mutex::new(Buffers::default()),
            resident: true,
        })
    }

    /// The device this backend runs on.
    pub fn gpu(&self) -> &GpuInfo {
        &self.sh.info
    }

    /// The CUDA context (for tests and tools that launch kernels themselves).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.sh.ctx
    }

    /// Whether sessions keep their activations and KV cache on the device (the default) or
    /// run through the host-slice operators, copying every operator's data both ways (the
    /// first backend's behaviour, kept for comparisons).
    pub fn set_resident(&mut self, on: bool) {
        self.resident = on;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn upload<T: cudarc::driver::DeviceRepr>(&self, host: &[T], dst: &mut CudaSlice<T>) {
        if host.is_empty() {
            return;
        }
        let mut view = dst.slice_mut(..host.len());
        self.sh
            .stream
            .memcpy_htod(host, &mut view)
            .unwrap_or_else(|e| fail("copying to the device", e));
    }

    fn download(&self, src: &CudaSlice<f32>, host: &mut [f32]) {
        let view = src.slice(..host.len());
        self.sh
            .stream
            .memcpy_dtoh(&view, host)
            .unwrap_or_else(|e| fail("copying from the device", e));
        self.sh
            .stream
            .synchronize()
            .unwrap_or_else(|e| fail("synchronising", e));
    }

    fn builder(&self, name: &str) -> LaunchArgs<'_> {
        self.sh.builder(name)
    }
}

/// Launches a kernel whose parameters `b` holds.
pub(crate) fn go(name: &str, b: &mut LaunchArgs<'_>, cfg: LaunchConfig) {
    // SAFETY: every kernel's parameter list is matched by the arguments pushed at its call
    // site, and every buffer is at least as long as the lengths passed with it.
    unsafe { b.launch(cfg) }.unwrap_or_else(|e| fail(name, e));
}

pub(crate) fn grid1(n: usize, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(block).max(1), 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The quantized product kernel, activation mode and block size for a weight type.
pub(crate) fn product_kernel(ty: GgmlType) -> (&'static str, i32, usize) {
    match ty {
        GgmlType::Q4_0 => ("mul_mat_q4_0", 0, 32),
        GgmlType::Q4_1 => ("mul_mat_q4_1", 1, 32),
        GgmlType::Q5_0 => ("mul_mat_q5_0", 0, 32),
        GgmlType::Q8_0 => ("mul_mat_q8_0", 0, 32),
        GgmlType::Q4K => ("mul_mat_q4k", 2, 256),
        GgmlType::Q6K => ("mul_mat_q6k", 2, 256),
        GgmlType::F32 => ("mul_mat_f32", -1, 1),
        GgmlType::F16 => ("mul_mat_f16", -1, 1),
    }
}

/// Enqueues the quantization of `x` (`n × k` floats) to the int8 blocks of activation `mode`
/// (blocks of `bsz`) into `act`, as [`product_kernel`] names them.
pub(crate) fn enqueue_quantize(
    sh: &Shared,
    x: &CudaView<'_, f32>,
    n: usize,
    k: usize,
    (mode, bsz): (i32, usize),
    act: &mut ActScratch,
) {
    let n_blocks = n * k / bsz;
    let aq = fit(&sh.stream, &mut act.aq, n * k);
    let ad = fit(&sh.stream, &mut act.ad, n_blocks);
    let asum = fit(&sh.stream, &mut act.asum, n_blocks);
    let bsums = fit(&sh.stream, &mut act.bsums, n * k / 16);
    let (nb, bs) = (n_blocks as i32, bsz as i32);
    let qcfg = LaunchConfig {
        grid_dim: (n_blocks as u32, 1, 1),
        block_dim: (bsz as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = sh.builder("quantize_act");
    b.arg(x)
        .arg(&nb)
        .arg(&bs)
        .arg(&mode)
        .arg(&mut *aq)
        .arg(&mut *ad)
        .arg(&mut *asum)
        .arg(&mut *bsums);
    go("quantize_act", &mut b, qcfg);
}

/// Enqueues `out = W · x` for `n` tokens (`out` is `n × rows`): float weights read `x`
/// directly, quantized ones the activations [`enqueue_quantize`] left in `act` for their mode.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enqueue_product(
    sh: &Shared,
    wd: &CudaSlice<u8>,
    ty: GgmlType,
    (rows, cols): (usize, usize),
    x: &CudaView<'_, f32>,
    act: &ActScratch,
    n: usize,
    out: &mut CudaViewMut<'_, f32>,
) {
    let (name, _, _) = product_kernel(ty);
    let cfg = LaunchConfig {
        grid_dim: (
            (rows as u32).div_ceil(ROWS_PER_BLOCK),
            (n as u32).div_ceil(TOK),
            1,
        ),
        block_dim: (ROWS_PER_BLOCK * 32, 1, 1),
        shared_mem_bytes: 0,
    };
    let (r, c, nt) = (rows as i32, cols as i32, n as i32);
    let mut b = sh.builder(name);
    if ty.act_type() == ActType::F32 {
        b.arg(wd).arg(&r).arg(&c).arg(x).arg(&nt).arg(out);
    } else {
        fn q(s: &str) -> ! {
            fail("a product", format!("{s}: activations not quantized"))
        }
        let aq = act.aq.as_ref().unwrap_or_else(|| q("aq"));
        let ad = act.ad.as_ref().unwrap_or_else(|| q("ad"));
        let asum = act.asum.as_ref().unwrap_or_else(|| q("asum"));
        let bsums = act.bsums.as_ref().unwrap_or_else(|| q("bsums"));
        b.arg(wd)
            .arg(&r)
            .arg(&c)
            .arg(aq)
            .arg(ad)
            .arg(asum)
            .arg(bsums)
            .arg(&nt)
            .arg(out);
    }
    go(name, &mut b, cfg);
}

impl Ops for CudaOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        let (k, m) = (w.cols, w.rows);
        assert_eq!(x.len(), n * k, "matmul input shape");
        assert_eq!(out.len(), n * m, "matmul output shape");
        let wd = self.sh.weight(w.bytes());
        let mut guard = self.lock();
        let b = &mut *guard;
        let xd = fit(&self.sh.stream, &mut b.x, n * k);
        self.upload(x, xd);
        let od = fit(&self.sh.stream, &mut b.out, n * m);
        let xv = xd.slice(..n * k);
        if w.ty.act_type() != ActType::F32 {
            let (_, mode, bsz) = product_kernel(w.ty);
            enqueue_quantize(&self.sh, &xv, n, k, (mode, bsz), &mut b.act);
        }
        enqueue_product(
            &self.sh,
            &wd,
            w.ty,
            (m, k),
            &xv,
            &b.act,
            n,
            &mut od.slice_mut(..n * m),
        );
        self.download(od, out);
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let d = weight.len();
        let rows = x.len() / d;
        let wd = self.sh.vector(weight);
        let wd = &*wd;
        let mut guard = self.lock();
        let b = &mut *guard;
        let xd = fit(&self.sh.stream, &mut b.x, x.len());
        self.upload(x, xd);
        let od = fit(&self.sh.stream, &mut b.out, x.len());
        let di = d as i32;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.builder("rms_norm_f32");
        b.arg(&*xd).arg(wd).arg(&eps).arg(&di).arg(&mut *od);
        go("rms_norm_f32", &mut b, cfg);
        self.download(od, &mut out[..x.len()]);
    }

    fn rope(
        &self,
        x: &mut [f32],
        pos0: usize,
        n_heads: usize,
        head_dim: usize,
        layout: RopeLayout,
        base: f32,
    ) {
        let rows = x.len() / (n_heads * head_dim);
        // The same f32 computation as CpuOps::rope.
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        let mut guard = self.lock();
        let b = &mut *guard;
        let xd = fit(&self.sh.stream, &mut b.x, x.len());
        self.upload(x, xd);
        let (p0, nh, hd) = (pos0 as i32, n_heads as i32, head_dim as i32);
        let lay: i32 = match layout {
            RopeLayout::Adjacent => 0,
            RopeLayout::Halves => 1,
        };
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, n_heads as u32, 1),
            block_dim: ((head_dim / 2) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.builder("rope_f32");
        b.arg(&mut *xd)
            .arg(&p0)
            .arg(&nh)
            .arg(&hd)
            .arg(&lay)
            .arg(&theta_scale);
        go("rope_f32", &mut b, cfg);
        self.download(xd, x);
    }

    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        let n = gate.len();
        let mut guard = self.lock();
        let b = &mut *guard;
        let gd = fit(&self.sh.stream, &mut b.x, n);
        self.upload(gate, gd);
        let ud = fit(&self.sh.stream, &mut b.out, n);
        self.upload(up, ud);
        let ni = n as i32;
        let mut b = self.builder("swiglu_f32");
        b.arg(&mut *gd).arg(&*ud).arg(&ni);
        go("swiglu_f32", &mut b, grid1(n, 256));
        self.download(gd, gate);
    }

    fn attention(
        &self,
        q: &[f32],
        k_cache: &[f32],
        v_cache: &[f32],
        s: AttnShape,
        out: &mut [f32],
    ) {
        let kv_len = (s.pos0 + s.n_tokens) * s.n_head_kv * s.head_dim;
        let a = AttentionLaunch::new(&s);
        let mut guard = self.lock();
        let b = &mut *guard;
        let qd = fit(&self.sh.stream, &mut b.x, q.len());
        self.upload(q, qd);
        let kd = fit(&self.sh.stream, &mut b.k, kv_len);
        self.upload(&k_cache[..kv_len], kd);
        let vd = fit(&self.sh.stream, &mut b.v, kv_len);
        self.upload(&v_cache[..kv_len], vd);
        let od = fit(&self.sh.stream, &mut b.out, q.len());
        let mut b = self.builder("attention_f32");
        b.arg(&*qd)
            .arg(&*kd)
            .arg(&*vd)
            .arg(&a.n_head)
            .arg(&a.n_head_kv)
            .arg(&a.head_dim)
            .arg(&a.pos0)
            .arg(&a.scale)
            .arg(&mut *od);
        go("attention_f32", &mut b, a.cfg);
        self.download(od, out);
    }

    fn n_threads(&self) -> usize {
        1
    }

    fn device_session(&self, model: &Model, n_ctx: usize) -> Option<Box<dyn DeviceState>> {
        if !self.resident {
            return None;
        }
        Some(Box::new(CudaSession::new(self.sh.clone(), model, n_ctx)))
    }
}

impl CudaOps {
    /// Greedy argmax of `logits` on the device (ties to the lowest index, as
    /// `engram_engine::sampler::argmax`).
    pub fn argmax(&self, logits: &[f32]) -> u32 {
        let mut guard = self.lock();
        let b = &mut *guard;
        let ld = fit(&self.sh.stream, &mut b.x, logits.len());
        self.upload(logits, ld);
        let mut res = self
            .sh
            .stream
            .alloc_zeros::<i32>(1)
            .unwrap_or_else(|e| fail("allocating", e));
        let n = logits.len() as i32;
        let mut b = self.builder("argmax_f32");
        b.arg(&*ld).arg(&n).arg(&mut res);
        go("argmax_f32", &mut b, grid1(1, 1024));
        let v = self
            .sh
            .stream
            .clone_dtoh(&res)
            .unwrap_or_else(|e| fail("copying from the device", e));
        v[0] as u32
    }
}
