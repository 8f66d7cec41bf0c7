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
    assert!(
        matches!(answer.by, AnsweredBy::Plugin { ref name, .. } if name == "judge-jaccard"),
        "{:?}",
        answer.by
    );
    let v = answer.value;
    assert_eq!(v.len(), 2);
    assert!(v[0].accept, "{:?}", v[0]);
    assert!(
        v[0].evidence.contains("server") && v[0].evidence.contains("ip"),
        "{}",
        v[0].evidence
    );
    assert!(!v[1].accept, "{:?}", v[1]);
    assert_eq!(v[1].confidence, 0.0);
    check_judge_behaviour(&slot);
}

#[test]
fn recall_concert_blends_recency_similarity_novelty_with_floor() {
    let host = host_with(Services::default());
    let slot = load(
        &host,
        PluginKind::RecallPolicy,
        &default_plugin("recall-concert"),
    );
    let six_hours = 6.0 * 3600.0;
    let cands = vec![
        candidate("old-similar", "a", 0.9, 10.0 * six_hours),
        candidate("fresh-similar", "b", 0.9, 0.0),
        candidate("below-floor", "c", 0.1, 0.0),
        candidate("fresh-weak", "d", 0.25, 0.0),
    ];
    let a = slot.rank("q", &cands);
    assert!(matches!(a.by, AnsweredBy::Plugin { .. }), "{:?}", a.by);
    let order: Vec<u32> = a.value.iter().map(|r| r.index).collect();
    assert_eq!(
        order,
        vec![1, 3, 0],
        "below-floor dropped, recency breaks the similarity tie"
    );
    // w = .35·exp(-age/τ) + .50·sim + .08·novelty
    let expect_fresh = 0.35 + 0.50 * 0.9 + 0.08 * 0.5;
    assert!(
        (a.value[0].score - expect_fresh).abs() < 1e-5,
        "{}",
        a.value[0].score
    );
    let expect_old = 0.35 * (-10.0f32).exp() + 0.50 * 0.9 + 0.08 * 0.5;
    assert!(
        (a.value[2].score - expect_old).abs() < 1e-5,
        "{}",
        a.value[2].score
    );
}

fn fact(subject: &str, facet: &str, value: &str, statement: &str) -> Fact {
    Fact {
        subject: subject.into(),
        facet: facet.into(),
        value: value.into(),
        statement: statement.into(),
    }
}

#[test]
fn capture_facts_admits_statements_and_skips_questions_requests_forget() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Capture, &default_plugin("capture-facts"));
    let cap = |t: &str| {
        let a = slot.capture(t);
        assert!(matches!(a.by, AnsweredBy::Plugin { .. }), "{t}: {:?}", a.by);
        a.value
    };
    assert_eq!(
        cap("My server's IP is 10.0.0.7"),
        vec![fact(
            "user.server",
            "ip",
            "ip:10.0.0.7",
            "My server's IP is 10.0.0.7"
        )]
    );
    assert_eq!(
        cap("I live in Lisbon."),
        vec![fact("user", "city", "Lisbon", "I live in Lisbon")]
    );
    assert_eq!(
        cap("My name is Ana"),
        vec![fact("user", "name", "Ana", "My name is Ana")]
    );
    assert_eq!(
        cap("I am 42 years old"),
        vec![fact("user", "age", "int:42", "I am 42 years old")]
    );
    assert_eq!(
        cap("My email is Ana@Example.org. I work at Acme"),
        vec![
            fact(
                "user",
                "email",
                "email:ana@example.org",
                "My email is Ana@Example.org"
            ),
            fact("user", "employer", "Acme", "I work at Acme"),
        ]
    );
    // A job with its employer, and a named group.
    assert_eq!(
        cap("I work as a nurse at Leeds General."),
        vec![
            fact(
                "user",
                "job",
                "a nurse",
                "I work as a nurse at Leeds General"
            ),
            fact(
                "user",
                "employer",
                "Leeds General",
                "I work as a nurse at Leeds General"
            ),
        ]
    );
    assert_eq!(
        cap("I have two kids, Sam and Lily."),
        vec![fact(
            "user",
            "kids",
            "Sam and Lily",
            "I have two kids, Sam and Lily"
        )]
    );
    // Two statements joined in one sentence after a greeting: one fact each.
    assert_eq!(
        cap("Hi! My name is Ada and I live in Lyon."),
        vec![
            fact("user", "name", "Ada", "My name is Ada"),
            fact("user", "city", "Lyon", "I live in Lyon"),
        ]
    );
    for skipped in [
        "What is my server's IP?",
        "is my name Ana",
        "Please remember that my name is Ana",
        "Tell me my server's IP",
        "Forget my server's IP",
        "Can you list my facts?",
        "",
    ] {
        assert!(cap(skipped).is_empty(), "should skip {skipped:?}");
    }
}

#[test]
fn tool_calc_is_exact() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Tool, &default_plugin("tool-calc"));
    let specs = slot.tool_describe().value;
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].name, "calc");
    let schema: serde_json::Value =
        serde_json::from_str(&specs[0].json_schema).expect("schema is JSON");
    assert_eq!(schema["required"][0], "expression");
    let calc = |e: &str| {
        slot.tool_invoke("calc", &serde_json::json!({ "expression": e }).to_string())
            .value
    };
    assert_eq!(calc("0.1 + 0.2"), Ok("3/10 = 0.3".into()));
    assert_eq!(calc("1/3 + 1/6"), Ok("1/2 = 0.5".into()));
    assert_eq!(calc("1/3"), Ok("1/3".into()));
    assert_eq!(calc("(17 + 4) * 3 - 2^10"), Ok("-961".into()));
    assert_eq!(calc("2^100"), Ok("1267650600228229401496703205376".into()));
    assert_eq!(calc("-2^-2"), Ok("-1/4 = -0.25".into()));
    assert_eq!(calc("99 * 101 / 3"), Ok("3333".into()));
    assert!(matches!(calc("1/0"), Err(ToolError::Failed(m)) if m.contains("division by zero")));
    assert!(matches!(calc("2^200"), Err(ToolError::Failed(m)) if m.contains("too large")));
    assert!(matches!(calc("2 +"), Err(ToolError::Failed(_))));
    assert!(matches!(
        slot.tool_invoke("calc", "not json").value,
        Err(ToolError::InvalidArguments(_))
    ));
    assert!(matches!(
        slot.tool_invoke("nope", "{}").value,
        Err(ToolError::UnknownTool(_))
    ));
}

#[test]
fn incompatible_wit_version_is_refused_with_the_versions_named() {
    let host = host_with(Services::default());
    let err = host
        .load(
            PluginKind::Judge,
            &hostile_plugin("judge-v2"),
            &Default::default(),
        )
        .expect_err("0.2.0 component must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("engram:plugin@0.2.0") && msg.contains("engram:plugin@0.1.0"),
        "{msg}"
    );
}

#[test]
fn a_component_of_another_kind_is_refused() {
    let host = host_with(Services::default());
    let err = host
        .load(
            PluginKind::Judge,
            &default_plugin("tool-calc"),
            &Default::default(),
        )
        .expect_err("a tool is not a judge");
    let msg = err.to_string();
    assert!(
        msg.contains("engram:plugin/judging") && msg.contains("engram:plugin/tools@0.1.0"),
        "{msg}"
    );
}
