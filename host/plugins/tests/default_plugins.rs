//! Every default plugin, built from source and loaded the way users load it,
//! answering its behaviour tests.

mod common;

use common::*;
use engram_plugins::{AnsweredBy, Fact, PluginKind, Services, ToolError};

#[test]
fn judge_jaccard_accepts_overlap_and_rejects_unrelated() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Judge, &default_plugin("judge-jaccard"));
    let cands = vec![
        candidate("a", "My server's IP is 10.0.0.7", 0.8, 10.0),
        candidate("b", "I live in Lisbon", 0.2, 10.0),
    ];
    let answer = slot.judge("what is my server's ip?", &cands);
    assert!(matches!(answer.by, AnsweredBy::Plugin { ref name, .. } if name == "judge-jaccard"), "{:?}", answer.by);
    let v = answer.value;
    assert_eq!(v.len(), 2);
    assert!(v[0].accept, "{:?}", v[0]);
    assert!(v[0].evidence.contains("server") && v[0].evidence.contains("ip"), "{}", v[0].evidence);
    assert!(!v[1].accept, "{:?}", v[1]);
    assert_eq!(v[1].confidence, 0.0);
}
