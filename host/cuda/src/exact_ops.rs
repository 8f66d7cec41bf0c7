//! [`CudaExactOps`]: the engine's exact mode (`--exact`) with its islands on the GPU.
//!
//! Same contract as `engram_engine::ExactOps` — and the same bits: every operator converts its
//! `f32` inputs to Q15.16 with the engine's own [`f32_to_act`], runs the integer island, and
//! converts back with [`act_to_f32`]. RMSNorm, RoPE (cos/sin from the same CORDIC
//! [`RopeTable`]), SwiGLU and attention run as the integer kernels of `kernels/exact.cu`
//! ([`CudaExact`]); the exact quantized matrix product still runs on the CPU, through the
//! engine's `ExactOps` (its GPU port is the next step). `tests/gpu_parity.rs` checks that the
//! logits digest equals the CPU exact mode's.

use crate::backend::CudaOptions;
use crate::error::Result;
use crate::exact::CudaExact;
use engram_engine::exact_ops::{act_to_f32, f32_to_act};
use engram_engine::model::{RopeLayout, Weight};
use engram_engine::ops::AttnShape;
use engram_engine::{ExactOps, Model, Ops};
use engram_exact::{attention_scale_q30, rms_eps_from_f32_bits, RopeTable};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Exact operators with the islands on CUDA device 0 and the quantized products on the CPU.
pub struct CudaExactOps {
    gpu: CudaExact,
    cpu: ExactOps,
    rope: Mutex<Option<(u32, usize, RopeTable)>>,
}

impl std::fmt::Debug for CudaExactOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaExactOps({:?})", self.gpu)
    }
}

fn to_act(x: &[f32]) -> Vec<i32> {
    x.iter().map(|&v| f32_to_act(v)).collect()
}

fn to_f32(src: &[i32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = act_to_f32(s);
    }
}

/// The seam has no error channel: a GPU failure mid-pass panics with its message.
fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("CUDA exact backend: {e} (rerun with --device cpu)"))
}

impl CudaExactOps {
    /// Opens the GPU and loads the exact kernels (errors, never panics, without a GPU);
    /// `n_threads` is for the CPU's quantized products (0 = all cores).
    pub fn new(n_threads: usize, opts: &CudaOptions) -> Result<CudaExactOps> {
        Ok(CudaExactOps {
            gpu: CudaExact::new(opts)?,
            cpu: ExactOps::new(n_threads),
            rope: Mutex::new(None),
        })
    }

    /// Loads `path` with these operators, every weight validated for the exact products (as
    /// `ExactOps::load_model`).
    pub fn load_model(
        path: impl AsRef<Path>,
        ops: Arc<CudaExactOps>,
    ) -> engram_engine::Result<Model> {
        let model = Model::load_with(path, ops.clone())?;
        ops.cpu.prepare(&model)?;
        Ok(model)
    }
}

impl Ops for CudaExactOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.cpu.matmul(w, x, n, out);
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let eps_q32 = rms_eps_from_f32_bits(eps.to_bits())
            .expect("the RMSNorm epsilon is a finite non-negative number");
        let y = ok(self.gpu.rms_norm(&to_act(x), &to_act(weight), eps_q32));
        to_f32(&y, out);
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
        let n = x.len() / (n_heads * head_dim);
        let half = head_dim / 2;
        let (mut cos, mut sin) = (vec![0i32; n * half], vec![0i32; n * half]);
        {
            let mut guard = self.rope.lock().unwrap_or_else(|e| e.into_inner());
            if guard
                .as_ref()
                .is_none_or(|(b, d, _)| *b != base.to_bits() || *d != head_dim)
            {
                let table = RopeTable::from_f32_base(base.to_bits(), head_dim)
                    .unwrap_or_else(|e| panic!("exact mode needs an integer RoPE base: {e}"));
                *guard = Some((base.to_bits(), head_dim, table));
            }
            let (_, _, table) = guard.as_ref().expect("set above");
            for t in 0..n {
                let r = t * half..(t + 1) * half;
                table
                    .cos_sin((pos0 + t) as u32, &mut cos[r.clone()], &mut sin[r])
                    .expect("cos/sin slices have d/2 elements");
            }
        }
        let mut xi = to_act(x);
        ok(self.gpu.rope(
            &mut xi,
            &cos,
            &sin,
            n_heads,
            head_dim,
            layout == RopeLayout::Halves,
        ));
        to_f32(&xi, x);
    }

    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        let y = ok(self.gpu.swiglu(&to_act(gate), &to_act(up)));
        to_f32(&y, gate);
    }

    fn attention(
        &self,
        q: &[f32],
        k_cache: &[f32],
        v_cache: &[f32],
        s: AttnShape,
        out: &mut [f32],
    ) {
        let len = (s.pos0 + s.n_tokens) * s.n_head_kv * s.head_dim;
        let y = ok(self.gpu.attention(
            &to_act(q),
            &to_act(&k_cache[..len]),
            &to_act(&v_cache[..len]),
            s.n_head,
            s.n_head_kv,
            s.head_dim,
            s.pos0,
            attention_scale_q30(s.head_dim),
        ));
        to_f32(&y, out);
    }

    fn n_threads(&self) -> usize {
        self.cpu.n_threads()
    }
}
