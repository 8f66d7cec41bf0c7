//! The capabilities corpus: recallable facts about Engram itself, seeded into the store on
//! first start, so "what can you do?" is answered from memory rather than from the model's
//! parameters (which know nothing about Engram).
//!
//! A question that addresses the assistant ("what can you do?", "which endpoints do you
//! have?") routes to this subject: the best-matching capability facts are rendered as what
//! the assistant knows about itself.

use engram_memory::{Fact, MemoryStore, Source};

/// The subject (κ_coarse) of Engram's self-knowledge.
pub const CAPABILITIES_SUBJECT: &str = "engram";

/// (facet, statement) pairs of the corpus, in the assistant's own voice (they are rendered
/// as what it knows about itself); the first is the overview.
pub const CORPUS: &[(&str, &str)] = &[
    ("abilities", "I can do this: chat with you, remember facts you tell me, recall them in later conversations, correct and merge them, and forget them when you ask."),
    ("identity", "I am Engram, a local LLM host: I run my own GGUF engine, keep a verifiable memory store and run WebAssembly plugins."),
    ("forgetting", "To make me forget something, say \"forget …\": I erase the matching memory with verifiable (crypto-shredding) forgetting."),
    ("corrections", "When you correct a fact (\"actually it's …\"), I supersede the old value and keep it as history; additive statements (\"also …\") are merged."),
    ("endpoints", "My endpoints are POST /v1/chat/completions (OpenAI compatible), POST /v1/chat (native, with memory), GET /v1/models, GET /v1/metrics and a web console at /."),
    ("memory knobs", "My memory knobs on /v1/chat are recall, capture, k, consolidate and no_replay (answer from the memory state without replaying the transcript)."),
    ("heartbeat", "Between turns my heartbeat consolidates idle conversations into facts and summaries and runs a memory maintenance round."),
    ("conversations", "I keep whole conversations with a summary: I can recall the gist of an earlier conversation and read the full transcript on demand."),
    ("plugins", "My judge, recall policy, capture, agency and tool plugins are WebAssembly components that can be hot-swapped while I serve."),
];

/// Seed the corpus unless the store already has it; returns how many facts were written.
pub fn seed(store: &MemoryStore) -> engram_memory::Result<usize> {
    if store.get(CAPABILITIES_SUBJECT, CORPUS[0].0, None).is_some() {
        return Ok(0);
    }
    let facts: Vec<Fact> = CORPUS
        .iter()
        .map(|(facet, text)| Fact {
            subject: CAPABILITIES_SUBJECT.into(),
            facet: (*facet).into(),
            value: (*text).into(),
            text: Some((*text).into()),
            source: Source {
                session: Some("capabilities-corpus".into()),
                turn: None,
            },
            ..Fact::default()
        })
        .collect();
    let n = facts.len();
    store.remember_batch(facts)?;
    Ok(n)
}

/// Whether the text is a question to the assistant about itself ("what can you do?").
pub fn addresses_assistant(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let second_person = words
        .iter()
        .any(|w| matches!(*w, "you" | "your" | "yourself" | "you're" | "engram"));
    let first_person = words
        .iter()
        .any(|w| matches!(*w, "my" | "i" | "mine" | "i'm" | "we" | "our"));
    second_person
        && crate::memory::is_question(text)
        && (!first_person || words.contains(&"engram"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_to_the_assistant_are_recognised() {
        assert!(addresses_assistant("What can you do?"));
        assert!(addresses_assistant("Which endpoints do you have?"));
        assert!(addresses_assistant("tell me about yourself"));
        assert!(!addresses_assistant("What is my server's IP, do you know?"));
        assert!(!addresses_assistant("You are great."));
    }
}
