//! The memory state signature: an exact, order-independent fingerprint of what a store
//! currently knows, built from ring products by the dual-prime NTT of [`engram_exact::ntt`].
//!
//! # What it is
//!
//! Every current cell (one per κ) becomes one element of the ring `R = Z_M[x]/(x^512 + 1)`,
//! `M = q1·q2` (the NTT's CRT modulus):
//!
//! ```text
//! bind(cell) = K(subject, facet) ⊛ V(value)        ⊛ = negacyclic product in R (exact)
//! signature  = Σ bind(cell) over the current cells   (coefficient-wise, mod M)
//! ```
//!
//! `K` and `V` expand a BLAKE2b hash of the normalised κ (lower case, single spaces) and of
//! the value's normalised form (`ip:10.0.0.7`) into 512 coefficients, with separate domain
//! tags, so they are fixed public functions of the content.
//!
//! # Why a ring and not one more hash
//!
//! The anchor chain already proves the *history* (every write, in order). Two stores that
//! hold the same facts but learned them in another order, through other updates, or by an
//! `.atom` import have different chains; this signature is equal for them, and different as
//! soon as one current fact differs, so two hosts compare what they *know* with `==`:
//!
//! - **order-independent and incremental**: a sum in `R` does not depend on the order of its
//!   terms, and a write changes it by one term (`+ bind(new) − bind(old)` for a supersede,
//!   `− bind(old)` for a forget), with no re-hash of the other cells;
//! - **bound, not bagged**: `K ⊛ V` ties the value to its κ. A plain sum of separate key and
//!   value hashes would let `{a: x, b: y}` and `{a: y, b: x}` collide; the ring product
//!   separates them (the test checks it);
//! - **exact**: the products are integer arithmetic (NTT per prime, CRT to `u64`), so the
//!   same memory gives the same bits on every machine, thread count and build — unlike a
//!   float holographic binding (circular convolution in `f32`).
//!
//! It is not a cryptographic commitment: the ring is linear and public, so someone who wants
//! a collision can solve for one. Integrity against tampering stays with the anchor chain and
//! the (keyed) seal; the signature answers "do these two memories hold the same facts?".
//! Surface texts, provenance and embeddings are left out on purpose: the same fact stated in
//! other words is the same knowledge.

use crate::cell::{norm_key, Cell};
use crate::hash::{to_hex, Hash32};
use blake2::digest::consts::U64;
use blake2::{Blake2b, Digest};
use engram_exact::ntt::{NttPlan, MODULUS};
use std::sync::OnceLock;

/// The ring degree `n` of the signature (the NTT's largest).
pub const SIGNATURE_N: usize = 512;

/// An element of `Z_M[x]/(x^512 + 1)` summarising the current cells of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSignature {
    /// The 512 coefficients, each in `[0, M)`.
    coeffs: Vec<u64>,
    /// How many cells were bound into it.
    cells: usize,
}

fn plan() -> &'static NttPlan {
    static PLAN: OnceLock<NttPlan> = OnceLock::new();
    PLAN.get_or_init(|| NttPlan::new(SIGNATURE_N).expect("512 is a supported NTT size"))
}

/// `n` ring coefficients from BLAKE2b-512 in counter mode over `domain ‖ bytes`.
fn expand(domain: &[u8], bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::with_capacity(SIGNATURE_N);
    let mut counter = 0u32;
    while out.len() < SIGNATURE_N {
        let mut h = Blake2b::<U64>::new();
        h.update(domain);
        h.update(counter.to_le_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        let block = h.finalize();
        for chunk in block.chunks_exact(8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
            // 64 bits reduced mod M (< 2^60): the bias is below 2^-4 per value, irrelevant
            // for a fingerprint, and the mapping is a fixed public function.
            out.push(word % MODULUS);
        }
        counter += 1;
    }
    out.truncate(SIGNATURE_N);
    out
}

/// `K(subject, facet)`: the κ's ring element (normalised as the store's lookup key).
fn kappa_element(subject: &str, facet: &str) -> Vec<u64> {
    let key = format!("{}\u{1f}{}", norm_key(subject), norm_key(facet));
    expand(b"engram/state-signature/kappa/v1", key.as_bytes())
}

/// `V(value)`: the value's ring element, from its normalised form.
fn value_element(normalized: &str) -> Vec<u64> {
    expand(b"engram/state-signature/value/v1", normalized.as_bytes())
}

/// `K ⊛ V` for one fact.
pub fn bind(subject: &str, facet: &str, normalized_value: &str) -> Vec<u64> {
    let mut out = vec![0u64; SIGNATURE_N];
    plan()
        .multiply_mod(
            &kappa_element(subject, facet),
            &value_element(normalized_value),
            &mut out,
        )
        .expect("operands have the plan's length");
    out
}

impl StateSignature {
    /// The signature of no facts (the ring's zero).
    pub fn empty() -> Self {
        Self {
            coeffs: vec![0; SIGNATURE_N],
            cells: 0,
        }
    }

    /// The signature of `cells` (each taken as current; order does not matter).
    pub fn of<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Self {
        let mut sig = Self::empty();
        for cell in cells {
            sig.add(
                &cell.content.subject,
                &cell.content.facet,
                &cell.content.value.normalized,
            );
        }
        sig
    }

    /// Add one fact's bound element.
    pub fn add(&mut self, subject: &str, facet: &str, normalized_value: &str) {
        let b = bind(subject, facet, normalized_value);
        for (c, v) in self.coeffs.iter_mut().zip(b) {
            *c = (*c + v) % MODULUS;
        }
        self.cells += 1;
    }

    /// Remove one fact's bound element (a forget, or the old side of a supersede).
    pub fn remove(&mut self, subject: &str, facet: &str, normalized_value: &str) {
        let b = bind(subject, facet, normalized_value);
        for (c, v) in self.coeffs.iter_mut().zip(b) {
            *c = (*c + MODULUS - v) % MODULUS;
        }
        self.cells = self.cells.saturating_sub(1);
    }

    /// The coefficients, each in `[0, M)`.
    pub fn coefficients(&self) -> &[u64] {
        &self.coeffs
    }

    /// How many facts were added (minus removed).
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// A 32-byte BLAKE2b digest of the coefficients, to print and compare.
    pub fn digest(&self) -> Hash32 {
        let mut bytes = Vec::with_capacity(SIGNATURE_N * 8);
        for c in &self.coeffs {
            bytes.extend_from_slice(&c.to_le_bytes());
        }
        crate::hash::hash_bytes(&bytes)
    }

    /// [`StateSignature::digest`] in lower-case hex.
    pub fn hex(&self) -> String {
        to_hex(&self.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(facts: &[(&str, &str, &str)]) -> StateSignature {
        let mut s = StateSignature::empty();
        for (subject, facet, value) in facts {
            s.add(subject, facet, value);
        }
        s
    }

    #[test]
    fn order_does_not_matter() {
        let a = sig(&[
            ("server", "ip", "ip:10.0.0.7"),
            ("user", "city", "text:lisbon"),
        ]);
        let b = sig(&[
            ("user", "city", "text:lisbon"),
            ("server", "ip", "ip:10.0.0.7"),
        ]);
        assert_eq!(a, b);
        assert_ne!(a, StateSignature::empty());
    }

    #[test]
    fn binding_separates_swapped_values() {
        let a = sig(&[
            ("server", "ip", "ip:10.0.0.7"),
            ("router", "ip", "ip:10.0.0.1"),
        ]);
        let b = sig(&[
            ("server", "ip", "ip:10.0.0.1"),
            ("router", "ip", "ip:10.0.0.7"),
        ]);
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn remove_undoes_add_exactly() {
        let base = sig(&[("user", "city", "text:lisbon")]);
        let mut s = base.clone();
        s.add("server", "ip", "ip:10.0.0.7");
        s.remove("server", "ip", "ip:10.0.0.7");
        assert_eq!(s, base);
    }

    #[test]
    fn kappa_is_normalised() {
        assert_eq!(
            sig(&[("My  Server", "IP", "ip:10.0.0.7")]),
            sig(&[("my server", "ip", "ip:10.0.0.7")])
        );
    }

    #[test]
    fn bind_is_the_ring_product() {
        // K ⊛ V by the NTT equals the schoolbook negacyclic product mod M.
        let k = kappa_element("server", "ip");
        let v = value_element("ip:10.0.0.7");
        let mut want = vec![0u64; SIGNATURE_N];
        engram_exact::ntt::negacyclic_schoolbook_mod(&k, &v, &mut want).unwrap();
        assert_eq!(bind("server", "ip", "ip:10.0.0.7"), want);
    }
}
