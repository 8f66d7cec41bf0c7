//! The capabilities corpus: recallable facts about Engram itself, seeded into the store on
//! first start, so "what can you do?" is answered from memory rather than from the model's
//! parameters (which know nothing about Engram).
//!
//! A question that addresses the assistant ("what can you do?", "which endpoints do you
//! have?") routes to this subject: the best-matching capability fact ([`rank`]) is rendered
//! as the answer, and the reply opens with its first words ([`opening`]) so that the small
//! default model goes on with it rather than with what its training says an assistant is.

use engram_memory::{Fact, MemoryStore, Source};
use std::collections::HashSet;

/// The subject (κ_coarse) of Engram's self-knowledge.
pub const CAPABILITIES_SUBJECT: &str = "engram";

/// (facet, statement) pairs of the corpus, in the assistant's own voice (they are rendered
/// as what it knows about itself); the first is the overview.
pub const CORPUS: &[(&str, &str)] = &[
    ("abilities", "I am Engram: I can chat with you, remember facts you tell me, recall them in later conversations, correct and merge them, and forget them when you ask."),
    ("identity", "I am Engram, a local LLM host: I run GGUF models on my own engine, keep a verifiable memory store and run WebAssembly plugins."),
    ("forgetting", "To make me forget or delete something, say \"forget …\": I erase the matching memory with verifiable (crypto-shredding) forgetting."),
    ("corrections", "When I have a fact wrong, correct it (\"actually it's …\"): I supersede the old value and keep it as history; additive statements (\"also …\") are merged."),
    ("endpoints", "My endpoints are POST /v1/chat/completions (OpenAI compatible), POST /v1/chat (native, with memory), GET /v1/models, GET /v1/metrics and a web console at /."),
    ("memory knobs", "My memory knobs on /v1/chat are recall, capture, k, consolidate, no_replay (answer from the memory state without replaying the transcript), anchor, opening, abstain and direct."),
    ("heartbeat", "Between turns my heartbeat consolidates idle conversations into facts and summaries and runs a memory maintenance round."),
    ("conversations", "I keep whole conversations with a summary: I can recall the gist of an earlier conversation and read the full transcript on demand."),
    ("plugins", "My judge, recall policy, capture, agency and tool plugins are WebAssembly components that can be hot-swapped while I serve."),
];

/// Seed the corpus: write each fact the store lacks or holds with other words (a store
/// seeded by an older Engram gets the new wording, superseding the old one); returns how
/// many facts were written.
pub fn seed(store: &MemoryStore) -> engram_memory::Result<usize> {
    let facts: Vec<Fact> = CORPUS
        .iter()
        .filter(|(facet, text)| {
            store
                .get(CAPABILITIES_SUBJECT, facet, None)
                .is_none_or(|cell| cell.content.text != *text)
        })
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
    if n > 0 {
        store.remember_batch(facts)?;
    }
    Ok(n)
}

/// Words of a question to the assistant that say nothing about which capability it asks
/// for, separated by spaces.
const FILLER: &str = "what you your yourself are is the a an tell me about which how who engram \
                      of to and or in do does can could have has i it something anything thing \
                      please there any be";

/// The words of `text` that can tell capabilities apart: lower case, singular, no filler,
/// and no single letter (the "s" of "what's" matched the "s" of "it's" in a statement).
fn content_words(text: &str) -> HashSet<String> {
    crate::memory::query_words(text)
        .iter()
        .filter(|w| w.len() > 1 && !FILLER.split_whitespace().any(|f| f == w.as_str()))
        .map(|w| crate::memory::singular(w))
        .collect()
}

/// Whether `word` names one of the facet's words: the same word, or one beginning the other
/// when the shorter has five letters or more ("correct" for "correction").
fn names(facet: &HashSet<String>, word: &str) -> bool {
    facet.iter().any(|f| {
        let (short, long) = if f.len() <= word.len() {
            (f.as_str(), word)
        } else {
            (word, f.as_str())
        };
        short == long || (short.len() >= 5 && long.starts_with(short))
    })
}

/// One capability fact as [`rank`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The corpus facet ("endpoints", "memory knobs").
    pub facet: &'a str,
    /// The statement.
    pub text: &'a str,
    /// The statement's embedding (empty when the store has none).
    pub embedding: &'a [f32],
}

/// The capability facts in order of how well they answer `question`, best first, with
/// their scores: 2 for each word naming the facet ("endpoints", "plugins"; see [`names`]),
/// `1/df` for each other word the statement shares with the question (df: how many
/// statements hold it, so "memory", in most of them, tells little), plus the cosine of the
/// embeddings (when both are given), which alone decides between statements sharing no word
/// with the question ("How can I call you over HTTP?"). A question with no word but filler
/// ranks the corpus in its order, the overview first.
pub fn rank(question: &str, embedding: Option<&[f32]>, entries: &[Entry]) -> Vec<(usize, f32)> {
    let asked = content_words(question);
    let held: Vec<(HashSet<String>, HashSet<String>)> = entries
        .iter()
        .map(|e| (content_words(e.facet), content_words(e.text)))
        .collect();
    let df = |word: &String| held.iter().filter(|(_, text)| text.contains(word)).count();
    let mut ranked: Vec<(usize, f32)> = entries
        .iter()
        .zip(&held)
        .enumerate()
        .map(|(i, (entry, (facet, text)))| {
            let named = asked.iter().filter(|w| names(facet, w)).count() as f32;
            let shared: f32 = asked
                .iter()
                .filter(|w| text.contains(*w))
                .map(|w| 1.0 / df(w).max(1) as f32)
                .sum();
            let meaning = match embedding {
                // A question of filler words only ("What can you do?", "Who are you?") is
                // the general one the overview answers; the embedding of so few words
                // points anywhere (it put "forgetting" first for "What can you do?").
                _ if asked.is_empty() => 0.0,
                Some(query) if query.len() == entry.embedding.len() => {
                    engram_embed::cosine(query, entry.embedding).max(0.0)
                }
                _ => 0.0,
            };
            (i, 2.0 * named + shared + meaning)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Words of a statement a reply to it opens with: enough to set the model on the
/// statement's track ("My endpoints are", "Between turns my"), few enough to leave it the rest.
pub const OPENING_WORDS: usize = 3;

/// The first [`OPENING_WORDS`] words of `statement` (without the space after them).
pub fn opening(statement: &str) -> &str {
    let mut words = 0;
    let mut in_word = false;
    for (at, c) in statement.char_indices() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                if words == OPENING_WORDS {
                    return &statement[..at];
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    statement.trim_end()
}

/// Words that make a question to the assistant a personal one — its feelings, tastes,
/// opinions or age ("Do you like me?", "Are you happy?", "What's your favourite colour?",
/// "How old are you?") — which no capability fact answers: with one of them, a question
/// that names no capability is left to the model. Before, the best-scoring fact answered
/// it anyway ("Do you like music?" was answered with the heartbeat).
const PERSONAL_WORDS: &[&str] = &[
    "like",
    "love",
    "enjoy",
    "prefer",
    "hate",
    "think",
    "feel",
    "feeling",
    "believe",
    "opinion",
    "favourite",
    "favorite",
    "happy",
    "sad",
    "angry",
    "lonely",
    "bored",
    "tired",
    "smart",
    "alive",
    "conscious",
    "dream",
    "old",
    "age",
    "friend",
    "married",
    "gender",
    "today",
];

/// Whether a question to the assistant asks about it as a person ([`PERSONAL_WORDS`]) and
/// names no capability: its best capability fact would not answer it.
pub fn is_personal(question: &str, entries: &[Entry]) -> bool {
    let asked = content_words(question);
    let personal = asked.iter().any(|w| PERSONAL_WORDS.contains(&w.as_str()));
    let names_capability = entries.iter().any(|e| {
        let facet = content_words(e.facet);
        asked.iter().any(|w| names(&facet, w))
    });
    personal && !names_capability
}

/// Whether the text is a question to the assistant about itself ("what can you do?", "how
/// do I make you forget something?"), not about what the user owns or did with it ("what
/// is my server's IP, do you know?", "do you remember what we discussed?").
pub fn addresses_assistant(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let second_person = words
        .iter()
        .any(|w| matches!(*w, "you" | "your" | "yourself" | "you're" | "engram"));
    // "I" after an auxiliary or a "when"/"if" asks how the user may act on the assistant
    // ("how do I …", "can I …", "when I correct you"); anywhere else it is about the user
    // ("what did I tell you?", "do you know where I live?").
    let users_own = words.iter().enumerate().any(|(at, w)| match *w {
        "my" | "mine" | "myself" | "we" | "our" | "us" | "i'm" => true,
        "i" => {
            !(at > 0
                && matches!(
                    words[at - 1],
                    "do" | "can" | "could" | "should" | "may" | "would" | "will" | "when" | "if"
                ))
        }
        _ => false,
    });
    second_person && crate::memory::is_question(text) && (!users_own || words.contains(&"engram"))
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
        assert!(addresses_assistant("How do I make you forget something?"));
        assert!(!addresses_assistant("Do you remember what we discussed?"));
        assert!(addresses_assistant(
            "Can I swap your plugins while you run?"
        ));
        assert!(addresses_assistant("What do you do when I correct you?"));
        assert!(!addresses_assistant("What did I tell you yesterday?"));
        assert!(!addresses_assistant("Do you know where I live?"));
    }

    fn entries() -> Vec<Entry<'static>> {
        CORPUS
            .iter()
            .map(|(facet, text)| Entry {
                facet,
                text,
                embedding: &[],
            })
            .collect()
    }

    #[test]
    fn the_statement_a_question_names_ranks_first() {
        let best = |q: &str| CORPUS[rank(q, None, &entries())[0].0].0;
        assert_eq!(best("Which endpoints do you have?"), "endpoints");
        assert_eq!(best("What are your plugins?"), "plugins");
        assert_eq!(best("What does your heartbeat do?"), "heartbeat");
        assert_eq!(best("What are your memory knobs?"), "memory knobs");
        assert_eq!(best("How do I make you forget something?"), "forgetting");
        assert_eq!(best("What do you do when I correct you?"), "corrections");
        // Nothing but filler: the overview, first in the corpus.
        assert_eq!(best("What can you do?"), "abilities");
        assert_eq!(best("Who are you?"), "abilities");
    }

    #[test]
    fn personal_questions_are_left_to_the_model() {
        let e = entries();
        for q in [
            "Do you like me?",
            "Are you happy?",
            "Do you like music?",
            "What's your favourite colour?",
            "How old are you?",
            "What do you think about cats?",
        ] {
            assert!(is_personal(q, &e), "{q}");
        }
        for q in [
            "What can you do?",
            "Which endpoints do you have?",
            "Do you like your plugins?",
            "How do you handle corrections?",
        ] {
            assert!(!is_personal(q, &e), "{q}");
        }
        // "what's" no longer shares the "s" of "it's" with the corrections statement.
        assert!(!content_words("What's your name?").contains("s"));
    }

    #[test]
    fn the_embedding_decides_when_no_word_is_shared() {
        let mut with = entries();
        let near = [1.0, 0.0];
        let far = [0.0, 1.0];
        for (i, entry) in with.iter_mut().enumerate() {
            entry.embedding = if CORPUS[i].0 == "identity" {
                &near
            } else {
                &far
            };
        }
        let best = |q: &str| CORPUS[rank(q, Some(&near), &with)[0].0].0;
        assert_eq!(best("Are you software?"), "identity");
        // Filler only: the embedding is not asked, the overview answers.
        assert_eq!(best("What can you do?"), "abilities");
    }

    #[test]
    fn seeding_writes_what_is_missing_or_reworded_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path(), engram_memory::MemoryConfig::durable()).unwrap();
        // A store seeded by an older Engram: the overview in other words.
        store
            .remember(Fact {
                subject: CAPABILITIES_SUBJECT.into(),
                facet: CORPUS[0].0.into(),
                value: "I can do this: chat with you.".into(),
                text: Some("I can do this: chat with you.".into()),
                ..Fact::default()
            })
            .unwrap();
        assert_eq!(seed(&store).unwrap(), CORPUS.len());
        for (facet, text) in CORPUS {
            let cell = store.get(CAPABILITIES_SUBJECT, facet, None).unwrap();
            assert_eq!(cell.content.text, *text);
        }
        assert_eq!(seed(&store).unwrap(), 0, "a seeded store is left alone");
    }

    #[test]
    fn an_opening_is_the_first_words() {
        assert_eq!(
            opening("My endpoints are POST /v1/chat"),
            "My endpoints are"
        );
        assert_eq!(opening("  I am Engram: I can"), "  I am Engram:");
        assert_eq!(opening("Hello"), "Hello");
        assert_eq!(opening("Three short words "), "Three short words");
    }
}
