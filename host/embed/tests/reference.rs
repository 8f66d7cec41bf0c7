//! The embedder against the independent reference in tests/fixtures/minilm-reference.json
//! (Hugging Face `tokenizers` + a float64 numpy BERT forward; scripts/make_minilm_reference.py).
//!
//! These tests need the model files; they fail (never skip) when the files are missing.

use engram_embed::{cosine, default_model_dir, EmbedOptions, Embedder, Kernel, DIM, MAX_TOKENS};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Deserialize)]
struct Reference {
    max_tokens: usize,
    cases: Vec<Case>,
    truncated: Truncated,
    /// Random texts over many scripts and character classes, with the reference ids.
    tokenizer_cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Truncated {
    text: String,
    untruncated_len: usize,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn model_dir() -> PathBuf {
    let dir = default_model_dir();
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: run scripts/setup.sh to fetch the all-MiniLM-L6-v2 model files \
             (or point ENGRAM_MODELS at the folder holding all-MiniLM-L6-v2/)",
            dir.join(file).display()
        );
    }
    dir
}

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| Embedder::load(&model_dir()).expect("load all-MiniLM-L6-v2"))
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/minilm-reference.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("parse minilm-reference.json")
    })
}

#[test]
fn token_ids_equal_the_reference_tokenizer() {
    let (e, r) = (embedder(), reference());
    assert_eq!(r.max_tokens, MAX_TOKENS);
    assert_eq!(r.cases.len(), 20);
    assert!(
        r.cases.iter().any(|c| c.ids.len() > 128),
        "a case over 128 pieces"
    );
    for case in &r.cases {
        assert_eq!(e.token_ids(&case.text), case.ids, "text {:?}", case.text);
        assert_eq!(
            e.count_tokens(&case.text),
            case.ids.len(),
            "{:?}",
            case.text
        );
    }
    let t = &r.truncated;
    assert_eq!(e.token_ids(&t.text), t.ids, "truncated text");
    assert_eq!(t.ids.len(), MAX_TOKENS);
    assert_eq!(e.count_tokens(&t.text), t.untruncated_len);
}

#[test]
fn random_multilingual_texts_tokenize_like_the_reference() {
    let (e, r) = (embedder(), reference());
    assert!(r.tokenizer_cases.len() >= 400);
    let mut wrong = Vec::new();
    for case in &r.tokenizer_cases {
        // The reference ids are untruncated; ours are too when they fit.
        let want: Vec<u32> = if case.ids.len() <= MAX_TOKENS {
            case.ids.clone()
        } else {
            let mut ids = case.ids[..MAX_TOKENS - 1].to_vec();
            ids.push(*case.ids.last().unwrap());
            ids
        };
        if e.token_ids(&case.text) != want || e.count_tokens(&case.text) != case.ids.len() {
            wrong.push(format!(
                "{:?}\n  ours {:?}\n  want {:?}",
                case.text,
                e.token_ids(&case.text),
                want
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        r.tokenizer_cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn embeddings_match_the_reference_to_cosine_0_999() {
    let (e, r) = (embedder(), reference());
    let texts: Vec<&str> = r.cases.iter().map(|c| c.text.as_str()).collect();
    let got = e.embed_batch(&texts);
    let mut min = (f64::INFINITY, "");
    let mut max_abs = 0.0f32;
    for (case, v) in r.cases.iter().zip(&got) {
        assert_eq!(v.len(), DIM);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
        let c = cosine64(v, &case.embedding);
        if c < min.0 {
            min = (c, &case.text);
        }
        for (a, b) in v.iter().zip(&case.embedding) {
            max_abs = max_abs.max((a - b).abs());
        }
    }
    let truncated = cosine64(&e.embed(&r.truncated.text), &r.truncated.embedding);
    println!(
        "minimum cosine over 20 sentences: {:.9} (1 - cos = {:.2e}, {:?}); max |difference| {max_abs:.2e}",
        min.0,
        1.0 - min.0,
        min.1
    );
    println!("truncated text cosine: {truncated:.9}");
    assert!(min.0 >= 0.999, "cosine {} < 0.999 for {:?}", min.0, min.1);
    assert!(truncated >= 0.999, "truncated text cosine {truncated}");
}

/// Cosine in f64, to report how close to 1 it is.
fn cosine64(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embedding_is_deterministic_and_batch_equals_single() {
    let (e, r) = (embedder(), reference());
    let texts: Vec<&str> = r.cases.iter().map(|c| c.text.as_str()).collect();
    let batch = e.embed_batch(&texts);
    assert_eq!(batch, e.embed_batch(&texts), "two batches differ");
    for (text, v) in texts.iter().zip(&batch) {
        assert_eq!(&e.embed(text), v, "single vs batch for {text:?}");
    }
    assert!(e.embed_batch(&[]).is_empty());
}

#[test]
fn similar_sentences_score_higher_than_unrelated_ones() {
    let e = embedder();
    let triples = [
        (
            "A cat is sleeping on the warm windowsill.",
            "A kitten naps in the sunny window.",
            "The stock market fell sharply on Tuesday.",
        ),
        (
            "My sister's birthday is on the fifth of May.",
            "When is my sister's birthday? It's May 5th.",
            "Compile the Rust project with cargo build.",
        ),
        (
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "Bananas are rich in potassium.",
        ),
    ];
    for (a, similar, unrelated) in triples {
        let (va, vs, vu) = (e.embed(a), e.embed(similar), e.embed(unrelated));
        let (cs, cu) = (cosine(&va, &vs), cosine(&va, &vu));
        println!("{a:?}: similar {cs:.3}, unrelated {cu:.3}");
        assert!(cs > cu + 0.2, "{a:?}: similar {cs} vs unrelated {cu}");
    }
}

#[test]
fn thread_count_changes_nothing_and_portable_kernel_agrees() {
    let (e, r) = (embedder(), reference());
    let texts: Vec<&str> = r.cases.iter().map(|c| c.text.as_str()).collect();
    let want = e.embed_batch(&texts);
    let one = Embedder::load_with(
        &model_dir(),
        &EmbedOptions {
            threads: 1,
            ..EmbedOptions::default()
        },
    )
    .unwrap();
    assert_eq!(one.embed_batch(&texts), want, "1 thread vs default threads");
    let three = Embedder::load_with(
        &model_dir(),
        &EmbedOptions {
            threads: 3,
            ..EmbedOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        three.embed_batch(&texts),
        want,
        "3 threads vs default threads"
    );

    let portable = Embedder::load_with(
        &model_dir(),
        &EmbedOptions {
            threads: 0,
            simd: false,
        },
    )
    .unwrap();
    assert_eq!(portable.kernel(), Kernel::Portable);
    for (v, w) in portable.embed_batch(&texts).iter().zip(&want) {
        assert!(
            cosine(v, w) > 0.99999,
            "portable vs {:?}: {}",
            e.kernel(),
            cosine(v, w)
        );
    }
}

#[test]
fn odd_inputs_embed_without_panicking() {
    let e = embedder();
    for text in [
        "",
        " ",
        "\u{0}\u{FFFD}",
        "[CLS]",
        "[SEP][SEP]",
        "🙂",
        &"x".repeat(500),
        &"word ".repeat(2000),
    ] {
        let v = e.embed(text);
        assert_eq!(v.len(), DIM);
        assert!(v.iter().all(|x| x.is_finite()), "{text:?}");
        assert!(e.token_ids(text).len() <= MAX_TOKENS);
    }
    // Truncation keeps exactly the first pieces of the full tokenization, across lines.
    let doc = "Line one of a long note, with café and 東京.\n".repeat(60);
    let full = e.tokenizer().word_pieces(&doc);
    let ids = e.token_ids(&doc);
    assert_eq!(ids.len(), MAX_TOKENS);
    assert_eq!(ids[1..MAX_TOKENS - 1], full[..MAX_TOKENS - 2]);
    assert_eq!(e.count_tokens(&doc), full.len() + 2);
    // An empty text is [CLS] [SEP].
    assert_eq!(e.token_ids(""), [101, 102]);
    assert_eq!(e.count_tokens(&"word ".repeat(2000)), 2002);
}

#[test]
fn random_unicode_tokenizes_within_bounds() {
    // Any Unicode scalar values, including unassigned, private-use and control characters.
    let e = embedder();
    let vocab = e.config().vocab_size as u32;
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..2000 {
        let len = (next() % 40) as usize;
        let text: String = (0..len)
            .map(|_| {
                let r = next();
                let cp = match r % 4 {
                    0 => (r >> 8) % 0x80,
                    1 => (r >> 8) % 0x3000,
                    2 => (r >> 8) % 0x11_0000,
                    _ => 0x1F300 + (r >> 8) % 0x700,
                } as u32;
                char::from_u32(cp).unwrap_or('\u{FFFD}')
            })
            .collect();
        let ids = e.token_ids(&text);
        assert!(ids.len() >= 2 && ids.len() <= MAX_TOKENS, "{text:?}");
        assert_eq!((ids[0], *ids.last().unwrap()), (101, 102), "{text:?}");
        assert!(ids.iter().all(|&i| i < vocab), "{text:?}");
        assert!(e.count_tokens(&text) >= ids.len());
    }
}

#[test]
fn debug_output_is_short() {
    let text = format!("{:?}", embedder());
    assert!(text.len() < 200 && text.contains("Embedder"), "{text}");
}

#[test]
fn concurrent_callers_get_the_same_vectors() {
    let (e, r) = (embedder(), reference());
    let texts: Vec<&str> = r.cases.iter().map(|c| c.text.as_str()).collect();
    let want = e.embed_batch(&texts);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let texts = &texts;
                s.spawn(move || {
                    texts
                        .iter()
                        .cycle()
                        .skip(i * 7)
                        .take(texts.len())
                        .map(|t| (t.to_string(), e.embed(t)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (text, v) in h.join().unwrap() {
                let i = texts.iter().position(|t| *t == text).unwrap();
                assert_eq!(v, want[i], "{text:?}");
            }
        }
    });
}
