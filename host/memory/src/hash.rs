//! BLAKE2b hashing: content hashes, chain anchors and keyed seals.

use blake2::digest::{consts::U32, Digest, KeyInit, Mac};

/// A 32-byte BLAKE2b-256 digest (content hashes, anchors, conversation addresses).
pub type Hash32 = [u8; 32];

type Blake2b256 = blake2::Blake2b<U32>;
type Blake2bMac256 = blake2::Blake2bMac<U32>;

/// BLAKE2b-256 of the concatenation of `parts`, each prefixed by its length so that
/// distinct part lists can never collide by shifting bytes between parts.
pub fn hash_parts(parts: &[&[u8]]) -> Hash32 {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// BLAKE2b-256 of one byte string.
pub fn hash_bytes(bytes: &[u8]) -> Hash32 {
    Blake2b256::digest(bytes).into()
}

/// Keyed BLAKE2b-256 (the MAC mode of BLAKE2b) of the length-prefixed `parts`.
/// Keys longer than 64 bytes are first hashed down to 32 bytes.
pub fn keyed_hash_parts(key: &[u8], parts: &[&[u8]]) -> Hash32 {
    let key_buf;
    let key = if key.len() > 64 {
        key_buf = hash_bytes(key);
        &key_buf[..]
    } else {
        key
    };
    let mut m = <Blake2bMac256 as KeyInit>::new_from_slice(key)
        .expect("BLAKE2b accepts keys of 0..=64 bytes");
    for p in parts {
        Mac::update(&mut m, &(p.len() as u64).to_le_bytes());
        Mac::update(&mut m, p);
    }
    m.finalize().into_bytes().into()
}

/// Lower-case hexadecimal of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parse 64 hexadecimal digits into a [`Hash32`].
pub fn from_hex32(s: &str) -> Option<Hash32> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_parts() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
    }

    #[test]
    fn keyed_hash_depends_on_key() {
        assert_ne!(
            keyed_hash_parts(b"k1", &[b"x"]),
            keyed_hash_parts(b"k2", &[b"x"])
        );
        assert_ne!(keyed_hash_parts(b"k1", &[b"x"]), hash_parts(&[b"x"]));
    }

    #[test]
    fn hex_round_trip() {
        let h = hash_bytes(b"engram");
        assert_eq!(from_hex32(&to_hex(&h)), Some(h));
        assert_eq!(from_hex32("zz"), None);
    }
}
