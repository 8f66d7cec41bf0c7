//! Schoolbook negacyclic products: the `O(n²)` references the NTT is verified and benchmarked
//! against.

use super::MODULUS;
use crate::error::{check_len, ExactError};

fn check(a: usize, b: usize, out: usize) -> Result<(), ExactError> {
    check_len("schoolbook right operand", a, b)?;
    check_len("schoolbook output", a, out)
}

/// `out = a·b` in `Z[x]/(x^n + 1)` with wrapping `i64` arithmetic: exact whenever every true
/// coefficient fits an `i64` (intermediate overflow cancels modulo `2^64`).
pub fn negacyclic_schoolbook(a: &[i64], b: &[i64], out: &mut [i64]) -> Result<(), ExactError> {
    check(a.len(), b.len(), out.len())?;
    let n = a.len();
    out.fill(0);
    for (i, &ai) in a.iter().enumerate() {
        for (j, &bj) in b.iter().enumerate() {
            let p = ai.wrapping_mul(bj);
            let k = i + j;
            if k < n {
                out[k] = out[k].wrapping_add(p);
            } else {
                out[k - n] = out[k - n].wrapping_sub(p);
            }
        }
    }
    Ok(())
}

/// `out = a·b` in `Z_M[x]/(x^n + 1)`, `M = q1·q2`, outputs in `[0, M)`.
pub fn negacyclic_schoolbook_mod(a: &[u64], b: &[u64], out: &mut [u64]) -> Result<(), ExactError> {
    check(a.len(), b.len(), out.len())?;
    let n = a.len();
    let m = MODULUS as u128;
    out.fill(0);
    for (i, &ai) in a.iter().enumerate() {
        for (j, &bj) in b.iter().enumerate() {
            let p = ((ai % MODULUS) as u128 * (bj % MODULUS) as u128 % m) as u64;
            let k = i + j;
            if k < n {
                out[k] = ((out[k] as u128 + p as u128) % m) as u64;
            } else {
                out[k - n] = ((out[k - n] as u128 + m - p as u128) % m) as u64;
            }
        }
    }
    Ok(())
}
