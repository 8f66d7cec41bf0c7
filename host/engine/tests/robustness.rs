//! Property tests: the GGUF parser and the tokenizer never panic on random, truncated or
//! corrupted input, and tokenization round-trips arbitrary text.

mod common;

use engram_engine::gguf::GgufFile;
use engram_engine::tokenizer::StreamDecoder;
use engram_engine::Model;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Arc::new(Model::load(common::model_path(common::SMOLLM2)).unwrap()))
        .clone()
}

/// The first 2 MiB of the real model: the whole header (metadata, tokenizer, tensor infos).
fn header() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let b = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
        b[..2 << 20].to_vec()
    })
}

#[test]
fn every_truncation_of_a_real_file_is_an_error_naming_the_file() {
    let h = header();
    // Cut inside the magic, the counts, the metadata, the tokenizer arrays, the tensor infos
    // and the data.
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((64..h.len()).step_by(9973));
    for cut in cuts {
        match GgufFile::from_bytes(h[..cut].to_vec(), "cut.gguf") {
            Ok(_) => panic!("a file truncated at {cut} bytes was accepted"),
            Err(e) => assert!(e.to_string().contains("cut.gguf"), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut b = b"GGUF\x03\0\0\0".to_vec();
        b.extend_from_slice(&bytes);
        let _ = GgufFile::from_bytes(b, "random.gguf");
        let _ = GgufFile::from_bytes(bytes, "random.gguf");
    }

    #[test]
    fn corrupted_headers_never_panic(pos in 0usize..4096, val in any::<u8>(), len in 4096usize..(2 << 20)) {
        let mut b = header()[..len].to_vec();
        b[pos] = val;
        let _ = GgufFile::from_bytes(b, "corrupt.gguf");
    }

    #[test]
    fn tokenizer_round_trips_any_text(s in "\\PC{0,64}") {
        let m = model();
        let ids = m.tokenizer().encode(&s, false);
        prop_assert_eq!(m.tokenizer().decode(&ids, false), s.clone());
        let ids = m.tokenizer().encode(&s, true);
        prop_assert_eq!(m.tokenizer().decode(&ids, true), s);
    }

    #[test]
    fn stream_decoder_never_emits_broken_utf8(bytes in proptest::collection::vec(any::<u8>(), 0..64), split in proptest::collection::vec(1usize..5, 0..32)) {
        let mut d = StreamDecoder::new(false);
        let mut out = String::new();
        let mut rest = &bytes[..];
        let mut k = 0;
        while !rest.is_empty() {
            let n = split.get(k).copied().unwrap_or(3).min(rest.len());
            out.push_str(&d.push_bytes(&rest[..n]));
            rest = &rest[n..];
            k += 1;
        }
        out.push_str(&d.finish());
        prop_assert_eq!(out, String::from_utf8_lossy(&bytes).into_owned());
    }
}

#[test]
fn emoji_split_across_tokens_streams_whole() {
    let m = model();
    let text = "memory 🧠 and 👩‍👩‍👧 ok";
    let ids = m.tokenizer().encode(text, false);
    let mut d = StreamDecoder::new(false);
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.push(d.push(m.tokenizer(), id));
    }
    pieces.push(d.finish());
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), text);
}
