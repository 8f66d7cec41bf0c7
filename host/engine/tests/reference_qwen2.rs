//! Issue 3's correctness gate against llama.cpp for this model: exact tokenization and
//! template rendering, teacher-forced logits within tolerance, greedy continuations.

mod common;

use engram_engine::{reference::check_reference, Model};
use std::sync::Arc;

#[test]
fn matches_llama_cpp_reference() {
    let model = Arc::new(Model::load(common::model_path(common::QWEN2)).expect("model loads"));
    let json = std::fs::read_to_string(common::root().join("tests/fixtures/ref-qwen2.5-coder-0.5b-q4_k_m.json"))
        .expect("fixture");
    let report = check_reference(&model, &json).expect("comparison runs");
    for (line, ok) in report.checks() {
        println!("{} {line}", if ok { "PASS" } else { "FAIL" });
    }
    assert!(report.passed(), "reference comparison failed: {report:#?}");
}
