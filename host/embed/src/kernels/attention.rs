//! Bidirectional multi-head self-attention over the sequences of a batch.

use super::linear::Kernel;
use super::ops::softmax;
use rayon::prelude::*;

/// Computes attention for every sequence and head.
///
/// `qkv` holds one row of `3·d` floats per token (query, key, value, each `d = heads·head_dim`
/// wide, head `h` at columns `h·head_dim..`), the tokens of all sequences one after another;
/// `lens` gives each sequence's length. Writes one `d`-wide row per token to `ctx`. Tokens
/// attend to every token of their own sequence only, so no mask or padding is needed.
pub fn attention(
    kernel: Kernel,
    qkv: &[f32],
    lens: &[usize],
    heads: usize,
    head_dim: usize,
    ctx: &mut [f32],
    parallel: bool,
) {
    let d = heads * head_dim;
    let total: usize = lens.iter().sum();
    assert_eq!(qkv.len(), total * 3 * d, "qkv size");
    assert_eq!(ctx.len(), total * d, "ctx size");
    let mut jobs = Vec::with_capacity(lens.len() * heads);
    let mut start = 0;
    for &len in lens {
        for h in 0..heads {
            jobs.push((start, len, h));
        }
        start += len;
    }
    let run = |&(start, len, h): &(usize, usize, usize)| {
        let mut out = vec![0.0f32; len * head_dim];
        one_head(
            kernel,
            &qkv[start * 3 * d..(start + len) * 3 * d],
            len,
            d,
            h,
            head_dim,
            &mut out,
        );
        out
    };
    let results: Vec<Vec<f32>> = if parallel && total > 8 {
        jobs.par_iter().map(run).collect()
    } else {
        jobs.iter().map(run).collect()
    };
    for (&(start, len, h), out) in jobs.iter().zip(&results) {
        for t in 0..len {
            let dst = &mut ctx[(start + t) * d + h * head_dim..][..head_dim];
            dst.copy_from_slice(&out[t * head_dim..(t + 1) * head_dim]);
        }
    }
}

simd_dispatch! {
    /// Attention of head `h` within one sequence of `len` tokens; `out` is `len × head_dim`.
    ///
    /// Keys are gathered transposed (`head_dim × len`) and values contiguously, so both
    /// products are multiply-adds along contiguous rows that the compiler vectorises.
    pub fn one_head(
        qkv: &[f32],
        len: usize,
        d: usize,
        h: usize,
        head_dim: usize,
        out: &mut [f32],
    ) => one_head_impl
}

#[inline(always)]
fn one_head_impl(qkv: &[f32], len: usize, d: usize, h: usize, head_dim: usize, out: &mut [f32]) {
    let scale = 1.0 / (head_dim as f32).sqrt();
    let col = |t: usize, part: usize| &qkv[t * 3 * d + part * d + h * head_dim..][..head_dim];
    let mut keys_t = vec![0.0f32; head_dim * len];
    let mut values = vec![0.0f32; len * head_dim];
    for j in 0..len {
        for (c, &k) in col(j, 1).iter().enumerate() {
            keys_t[c * len + j] = k;
        }
        values[j * head_dim..(j + 1) * head_dim].copy_from_slice(col(j, 2));
    }
    let mut scores = vec![0.0f32; len];
    for i in 0..len {
        scores.fill(0.0);
        for (c, &q) in col(i, 0).iter().enumerate() {
            let q = q * scale;
            for (s, &k) in scores.iter_mut().zip(&keys_t[c * len..(c + 1) * len]) {
                *s += q * k;
            }
        }
        softmax(&mut scores);
        let o = &mut out[i * head_dim..(i + 1) * head_dim];
        o.fill(0.0);
        for (&p, v) in scores.iter().zip(values.chunks_exact(head_dim)) {
            for (ov, &vv) in o.iter_mut().zip(v) {
                *ov += p * vv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_token_attends_to_itself() {
        // One sequence of one token: the context is its value vector.
        let (heads, hd) = (2, 3);
        let qkv: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let mut ctx = vec![0.0; 6];
        attention(Kernel::Portable, &qkv, &[1], heads, hd, &mut ctx, false);
        assert_eq!(ctx, &qkv[12..18]);
    }

    #[test]
    fn sequences_do_not_see_each_other() {
        let (heads, hd) = (1, 2);
        // Two identical tokens with equal scores average their values.
        let seq = [1.0, 0.0, 1.0, 0.0, 2.0, 4.0, 1.0, 0.0, 1.0, 0.0, 6.0, 8.0];
        let mut both = seq.to_vec();
        both.extend_from_slice(&[5.0, 5.0, 5.0, 5.0, 9.0, 9.0]);
        let mut ctx = vec![0.0; 6];
        attention(Kernel::Portable, &both, &[2, 1], heads, hd, &mut ctx, false);
        assert_eq!(ctx, [4.0, 6.0, 4.0, 6.0, 9.0, 9.0]);
    }
}
