//! Missing and corrupt model files give errors that name the file and what was expected.

use engram_embed::{default_model_dir, Embedder};
use std::path::Path;

/// A temporary model folder holding copies of the real files, with `corrupt` applied.
fn broken_model(corrupt: impl FnOnce(&Path)) -> tempfile::TempDir {
    let src = default_model_dir();
    assert!(
        src.join("tokenizer.json").is_file(),
        "{} is missing: run scripts/setup.sh to fetch the all-MiniLM-L6-v2 model files",
        src.display()
    );
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    corrupt(dir.path());
    dir
}

fn load_error(dir: &Path) -> String {
    Embedder::load(dir).expect_err("load must fail").to_string()
}

#[test]
fn a_missing_folder_names_the_file_and_the_setup_script() {
    let err = load_error(Path::new("/nonexistent/all-MiniLM-L6-v2"));
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn a_missing_weights_file_is_named() {
    let dir = broken_model(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    let err = load_error(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("setup.sh"),
        "{err}"
    );
}

#[test]
fn a_truncated_weights_file_is_reported() {
    let dir = broken_model(|d| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("model.safetensors"))
            .unwrap();
        f.set_len(50_000_000).unwrap();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn corrupt_json_files_are_named() {
    let dir =
        broken_model(|d| std::fs::write(d.join("config.json"), "{\"hidden_size\": 384").unwrap());
    let err = load_error(dir.path());
    assert!(
        err.contains("config.json") && err.contains("expected"),
        "{err}"
    );

    let dir = broken_model(|d| std::fs::write(d.join("tokenizer.json"), "[]").unwrap());
    let err = load_error(dir.path());
    assert!(
        err.contains("tokenizer.json") && err.contains("WordPiece"),
        "{err}"
    );

    let dir = broken_model(|d| {
        let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
        std::fs::write(d.join("config.json"), cfg.replace("\"gelu\"", "\"relu\"")).unwrap();
    });
    let err = load_error(dir.path());
    assert!(err.contains("config.json") && err.contains("gelu"), "{err}");
}

#[test]
fn a_shape_mismatch_names_the_tensor() {
    // A config that disagrees with the weights.
    let dir = broken_model(|d| {
        let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
        let cfg = cfg.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 7");
        std::fs::write(d.join("config.json"), cfg).unwrap();
    });
    let err = load_error(dir.path());
    assert!(err.contains("missing tensor encoder.layer.6"), "{err}");

    let dir = broken_model(|d| {
        let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
        let cfg = cfg.replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024");
        std::fs::write(d.join("config.json"), cfg).unwrap();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("intermediate.dense.weight") && err.contains("expected [1024, 384]"),
        "{err}"
    );
}

#[test]
fn token_ids_beyond_the_embedding_table_are_rejected() {
    let dir = broken_model(|d| {
        let path = d.join("tokenizer.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["added_tokens"][4]["id"] = serde_json::json!(40_000);
        std::fs::write(&path, json.to_string()).unwrap();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("tokenizer.json") && err.contains("vocab_size is 30522"),
        "{err}"
    );
}
