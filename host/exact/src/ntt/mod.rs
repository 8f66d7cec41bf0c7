//! Exact products in `Z[x]/(x^n + 1)` by a dual-prime negacyclic NTT with CRT to `u64`.
//!
//! The primes `q1 = 1073738753 = 2^10·1048573 + 1` and `q2 = 1073732609 = 2^10·13·79·1021 + 1`
//! are both `≡ 1 (mod 1024)`, so each has a primitive `2n`-th root of unity `ψ` for every
//! power of two `n <= 512`. [`NttPlan::new`] finds them at run time (the smallest generator `g`
//! of `Z_q^*`, found by testing `g^((q−1)/p) != 1` for every prime factor `p` of `q − 1`, and
//! `ψ = g^((q−1)/2n)`); the tests check `ψ^n = −1` and `ψ^2n = 1`. A product is two forward
//! NTTs, a pointwise product and an inverse NTT per prime (`O(n log n)`), then the Chinese
//! remainder theorem combines the residues into `[0, M)`, `M = q1·q2 = 1152908312643096577`
//! (just below `2^60`, so `u64` suffices and no `u128` is needed on the hot path).
//!
//! # When the result is exact
//!
//! [`NttPlan::multiply_mod`] is always exact in `Z_M[x]/(x^n + 1)`. [`NttPlan::multiply_exact`]
//! lifts each coefficient to the centred range `(−M/2, M/2]`, which equals the integer
//! coefficient of the product in `Z[x]/(x^n + 1)` whenever `|c_k| <= (M − 1)/2`; a sufficient
//! condition on the inputs is `n · max|a_i| · max|b_j| <= (M − 1)/2 ≈ 2^59`, e.g. `|a|, |b| <=
//! 2^25` at `n = 512`. [`NttPlan::exact_for`] checks that condition for given bounds.
//!
//! # Where Engram uses it, and why
//!
//! *Exact binding of memory content signatures*: the memory store's state signature
//! (`engram_memory::signature`) binds every current fact as `K(κ) ⊛ V(value)` — two ring
//! elements expanded from BLAKE2b hashes of the normalised key and value, multiplied by
//! [`NttPlan::multiply_mod`] — and sums the products. Two stores that know the same facts get
//! the same signature whatever order, updates or imports they learned them through, and a key
//! bound to another value changes it. Unlike a float holographic binding (circular
//! convolution in `f32`), the result is the same bits on every machine, so signatures computed
//! by two hosts compare with `==`; a bound pair can also be unbound exactly with
//! [`NttPlan::invert_mod`] (`value = key⁻¹ ⊛ bound`, for keys whose NTT has no zero
//! coefficient, which is nearly all).
//!
//! What it does **not** give: it is not a cryptographic commitment. The ring is commutative and
//! linear, so anyone can construct other factorizations or collisions with linear algebra;
//! integrity and ordering of the memory log stay with the BLAKE2b anchor chain. It also hides
//! nothing: an element is a public function of its content.

mod prime;
mod schoolbook;

pub use schoolbook::{negacyclic_schoolbook, negacyclic_schoolbook_mod};

use crate::error::{check_len, ExactError};
use prime::{pow_mod, PrimeNtt};

/// The first NTT prime.
pub const Q1: u32 = 1_073_738_753;
/// The second NTT prime.
pub const Q2: u32 = 1_073_732_609;
/// The CRT modulus `q1·q2` (`< 2^60`).
pub const MODULUS: u64 = Q1 as u64 * Q2 as u64;
/// The largest supported ring degree.
pub const NTT_MAX_N: usize = 512;

/// A plan for products in `Z[x]/(x^n + 1)`: twiddle tables for both primes, built once.
#[derive(Debug, Clone)]
pub struct NttPlan {
    n: usize,
    p1: PrimeNtt,
    p2: PrimeNtt,
    /// `q1^−1 mod q2`.
    q1_inv: u64,
}

impl NttPlan {
    /// A plan for the power-of-two degree `n` in `1..=512`.
    pub fn new(n: usize) -> Result<Self, ExactError> {
        if !n.is_power_of_two() || n > NTT_MAX_N {
            return Err(ExactError::UnsupportedDimension {
                what: "NTT degree",
                len: n,
                supported: "powers of two 1..=512",
            });
        }
        Ok(Self {
            n,
            p1: PrimeNtt::new(Q1, n),
            p2: PrimeNtt::new(Q2, n),
            q1_inv: pow_mod(Q1 as u64, Q2 as u64 - 2, Q2 as u64),
        })
    }

    /// The ring degree `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The primitive `2n`-th roots of unity used modulo `q1` and `q2`.
    pub fn roots(&self) -> (u32, u32) {
        (self.p1.psi, self.p2.psi)
    }

    /// Whether [`NttPlan::multiply_exact`] is guaranteed exact for inputs bounded by
    /// `|a_i| <= a_bound`, `|b_j| <= b_bound` (`n · a_bound · b_bound <= (M − 1)/2`).
    pub fn exact_for(&self, a_bound: u64, b_bound: u64) -> bool {
        (self.n as u128) * a_bound as u128 * b_bound as u128 <= ((MODULUS - 1) / 2) as u128
    }

    fn check(&self, a: usize, b: usize, out: usize) -> Result<(), ExactError> {
        check_len("NTT left operand", self.n, a)?;
        check_len("NTT right operand", self.n, b)?;
        check_len("NTT output", self.n, out)
    }

    /// `r1 + q1·((r2 − r1)·q1⁻¹ mod q2)`: the unique value in `[0, M)` with the given residues.
    #[inline]
    fn crt(&self, r1: u32, r2: u32) -> u64 {
        let (q2, r1) = (Q2 as u64, r1 as u64);
        let diff = (r2 as u64 + q2 - r1 % q2) % q2;
        r1 + Q1 as u64 * (diff * self.q1_inv % q2)
    }

    /// Runs the transforms on residue vectors (reduced per prime, each of length `n`) and
    /// writes the CRT-combined coefficients in `[0, M)` through `emit`.
    fn product(
        &self,
        x1: &mut [u32],
        y1: &mut [u32],
        x2: &mut [u32],
        y2: &mut [u32],
        mut emit: impl FnMut(usize, u64),
    ) {
        for (p, x, y) in [
            (&self.p1, &mut *x1, &mut *y1),
            (&self.p2, &mut *x2, &mut *y2),
        ] {
            p.forward(x);
            p.forward(y);
            p.pointwise(x, y);
            p.inverse(x);
        }
        for (k, (&r1, &r2)) in x1.iter().zip(x2.iter()).enumerate() {
            emit(k, self.crt(r1, r2));
        }
    }

    /// The product of `a` and `b` in `Z_M[x]/(x^n + 1)`: inputs are taken modulo `M`, outputs
    /// are in `[0, M)`. Always exact. Never allocates (scratch lives on the stack).
    pub fn multiply_mod(&self, a: &[u64], b: &[u64], out: &mut [u64]) -> Result<(), ExactError> {
        self.check(a.len(), b.len(), out.len())?;
        let mut s = Scratch::new();
        let n = self.n;
        let [x1, y1, x2, y2] = s.split(n);
        for k in 0..n {
            let (a, b) = (a[k] % MODULUS, b[k] % MODULUS);
            x1[k] = (a % Q1 as u64) as u32;
            x2[k] = (a % Q2 as u64) as u32;
            y1[k] = (b % Q1 as u64) as u32;
            y2[k] = (b % Q2 as u64) as u32;
        }
        self.product(x1, y1, x2, y2, |k, v| out[k] = v);
        Ok(())
    }

    /// The product of `a` and `b` in `Z[x]/(x^n + 1)`, each coefficient lifted to the centred
    /// range `(−M/2, M/2]`. Exact whenever every true coefficient is at most `(M − 1)/2` in
    /// magnitude (see [`NttPlan::exact_for`]). Never allocates.
    pub fn multiply_exact(&self, a: &[i64], b: &[i64], out: &mut [i64]) -> Result<(), ExactError> {
        self.check(a.len(), b.len(), out.len())?;
        let mut s = Scratch::new();
        let n = self.n;
        let [x1, y1, x2, y2] = s.split(n);
        for k in 0..n {
            x1[k] = a[k].rem_euclid(Q1 as i64) as u32;
            x2[k] = a[k].rem_euclid(Q2 as i64) as u32;
            y1[k] = b[k].rem_euclid(Q1 as i64) as u32;
            y2[k] = b[k].rem_euclid(Q2 as i64) as u32;
        }
        self.product(x1, y1, x2, y2, |k, v| {
            out[k] = if v > MODULUS / 2 {
                v as i64 - MODULUS as i64
            } else {
                v as i64
            };
        });
        Ok(())
    }

    /// The inverse of `a` in `Z_M[x]/(x^n + 1)` (so that `multiply_mod(a, out) = 1`), or
    /// [`ExactError::NotInvertible`] when an NTT coefficient of `a` is zero modulo a prime.
    pub fn invert_mod(&self, a: &[u64], out: &mut [u64]) -> Result<(), ExactError> {
        check_len("NTT operand", self.n, a.len())?;
        check_len("NTT output", self.n, out.len())?;
        let mut s = Scratch::new();
        let n = self.n;
        let [x1, _, x2, _] = s.split(n);
        for k in 0..n {
            let v = a[k] % MODULUS;
            x1[k] = (v % Q1 as u64) as u32;
            x2[k] = (v % Q2 as u64) as u32;
        }
        for (p, x) in [(&self.p1, &mut *x1), (&self.p2, &mut *x2)] {
            p.forward(x);
            for v in x.iter_mut() {
                if *v == 0 {
                    return Err(ExactError::NotInvertible);
                }
                *v = pow_mod(*v as u64, p.q as u64 - 2, p.q as u64) as u32;
            }
            p.inverse(x);
        }
        for k in 0..n {
            out[k] = self.crt(x1[k], x2[k]);
        }
        Ok(())
    }
}

/// Stack scratch for four residue vectors of the largest degree.
struct Scratch([[u32; NTT_MAX_N]; 4]);

impl Scratch {
    fn new() -> Self {
        Self([[0; NTT_MAX_N]; 4])
    }

    fn split(&mut self, n: usize) -> [&mut [u32]; 4] {
        let [a, b, c, d] = &mut self.0;
        [&mut a[..n], &mut b[..n], &mut c[..n], &mut d[..n]]
    }
}

#[cfg(test)]
mod tests;
