//! The negacyclic NTT modulo one prime `q < 2^30` with `2n | q − 1`.

/// `a^e mod q`.
pub(crate) fn pow_mod(mut a: u64, mut e: u64, q: u64) -> u64 {
    let mut r = 1u64;
    a %= q;
    while e > 0 {
        if e & 1 == 1 {
            r = r * a % q;
        }
        a = a * a % q;
        e >>= 1;
    }
    r
}

/// The distinct prime factors of `m` (trial division; `m < 2^32`).
fn prime_factors(mut m: u64) -> Vec<u64> {
    let mut f = Vec::new();
    let mut d = 2u64;
    while d * d <= m {
        if m.is_multiple_of(d) {
            f.push(d);
            while m.is_multiple_of(d) {
                m /= d;
            }
        }
        d += 1;
    }
    if m > 1 {
        f.push(m);
    }
    f
}

/// The smallest generator of the multiplicative group modulo the prime `q`.
pub(crate) fn generator(q: u64) -> u64 {
    let factors = prime_factors(q - 1);
    (2..q)
        .find(|&g| factors.iter().all(|&p| pow_mod(g, (q - 1) / p, q) != 1))
        .expect("a prime modulus has a generator")
}

/// Shoup's precomputed multiplier `floor(w · 2^32 / q)` for a constant `w < q`.
#[inline]
fn shoup(w: u32, q: u32) -> u32 {
    (((w as u64) << 32) / q as u64) as u32
}

/// `a · w mod q` for `a < 2^32` with Shoup's precomputed `ws = shoup(w, q)`.
#[inline(always)]
fn mul_shoup(a: u32, w: u32, ws: u32, q: u32) -> u32 {
    let qhat = (a as u64 * ws as u64) >> 32;
    let r = (a as u64 * w as u64).wrapping_sub(qhat * q as u64) as u32; // in [0, 2q)
    if r >= q {
        r - q
    } else {
        r
    }
}

/// Twiddle tables of the negacyclic NTT of size `n` modulo `q`.
#[derive(Debug, Clone)]
pub(crate) struct PrimeNtt {
    pub(crate) q: u32,
    /// The primitive `2n`-th root of unity `ψ` (`ψ^n = −1`).
    pub(crate) psi: u32,
    /// `ψ^bitrev(k)` and Shoup multipliers, `k` in `0..n`.
    fwd: Vec<(u32, u32)>,
    /// `ψ^−bitrev(k)` and Shoup multipliers.
    inv: Vec<(u32, u32)>,
    /// `n^−1 mod q` and its Shoup multiplier.
    n_inv: (u32, u32),
    /// Barrett's constant `floor(2^60 / q)` for the pointwise products.
    barrett: u64,
}

impl PrimeNtt {
    /// Tables for a power-of-two `n` with `2n | q − 1`.
    pub(crate) fn new(q: u32, n: usize) -> Self {
        let q64 = q as u64;
        let g = generator(q64);
        let psi = pow_mod(g, (q64 - 1) / (2 * n as u64), q64) as u32;
        let psi_inv = pow_mod(psi as u64, q64 - 2, q64) as u32;
        let bits = n.trailing_zeros();
        let br = |k: usize| {
            if bits == 0 {
                0
            } else {
                k.reverse_bits() >> (usize::BITS - bits)
            }
        };
        let table = |root: u32| -> Vec<(u32, u32)> {
            (0..n)
                .map(|k| {
                    let w = pow_mod(root as u64, br(k) as u64, q64) as u32;
                    (w, shoup(w, q))
                })
                .collect()
        };
        let ni = pow_mod(n as u64, q64 - 2, q64) as u32;
        Self {
            q,
            psi,
            fwd: table(psi),
            inv: table(psi_inv),
            n_inv: (ni, shoup(ni, q)),
            barrett: (1u64 << 60) / q64,
        }
    }

    /// In-place forward negacyclic NTT (Cooley–Tukey, normal order in, bit-reversed out).
    /// Inputs must be reduced (`< q`).
    pub(crate) fn forward(&self, a: &mut [u32]) {
        let (n, q) = (a.len(), self.q);
        let mut t = n;
        let mut m = 1;
        while m < n {
            t /= 2;
            for i in 0..m {
                let (w, ws) = self.fwd[m + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = *x;
                    let v = mul_shoup(*y, w, ws, q);
                    let s = u + v;
                    *x = if s >= q { s - q } else { s };
                    *y = if u >= v { u - v } else { u + q - v };
                }
            }
            m *= 2;
        }
    }

    /// In-place inverse negacyclic NTT (Gentleman–Sande, bit-reversed in, normal order out),
    /// including the division by `n`.
    pub(crate) fn inverse(&self, a: &mut [u32]) {
        let (n, q) = (a.len(), self.q);
        let mut t = 1;
        let mut m = n;
        while m > 1 {
            let h = m / 2;
            for i in 0..h {
                let (w, ws) = self.inv[h + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*x, *y);
                    let s = u + v;
                    *x = if s >= q { s - q } else { s };
                    let d = if u >= v { u - v } else { u + q - v };
                    *y = mul_shoup(d, w, ws, q);
                }
            }
            t *= 2;
            m = h;
        }
        let (ni, nis) = self.n_inv;
        for x in a.iter_mut() {
            *x = mul_shoup(*x, ni, nis, q);
        }
    }

    /// `a[i] · b[i] mod q` into `a` (Barrett reduction: the product is below `q² < 2^60`, the
    /// quotient estimate is low by at most 2).
    pub(crate) fn pointwise(&self, a: &mut [u32], b: &[u32]) {
        let q = self.q as u64;
        for (x, &y) in a.iter_mut().zip(b) {
            let p = *x as u64 * y as u64;
            let qhat = ((p as u128 * self.barrett as u128) >> 60) as u64;
            let mut r = p - qhat * q;
            while r >= q {
                r -= q;
            }
            *x = r as u32;
        }
    }
}
