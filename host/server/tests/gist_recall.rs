//! Which gists of earlier conversations reach the prompt (`memory::gist_relevance`): one that
//! shares the text's topic or that the text refers back to, never one that only looks alike.
//! The summaries are written as consolidation writes them (`summarize`); the end-to-end path
//! (heartbeat consolidation, then chat) is `tests/python/test_agency.py::test_g_consolidate`.

use engram_server::memory::{focused_gist_relevance, gist_relevance};

const BIKE: &str =
    "A conversation of 4 turns. The user told you about: your bike's colour, your bike's brand.";
const LAPTOP_PORT: &str = "A conversation of 2 turns. The user told you about: your laptop's port.";
const CITY: &str = "A conversation of 2 turns. The user told you about: your city.";
const ASKED: &str = "A conversation of 2 turns. The user asked: What is the capital of France?";

fn relevant(text: &str, summary: &str) -> bool {
    gist_relevance(text, summary).is_some()
}

#[test]
fn a_look_alike_statement_about_another_kappa_recalls_no_gist() {
    // The latency bench's turns: one short statement each, every one of another κ; the same
    // facet or the same owner alone is another thing.
    for text in [
        "My boat's colour is olive-12.",
        "My server's ip is 10.1.1.1.",
        "My laptop's ip is 10.1.1.2.",
        "My bike's serial is SN-10037.",
        "The nickname of my router is Wren3.",
    ] {
        for summary in [BIKE, LAPTOP_PORT, CITY, ASKED] {
            assert!(!relevant(text, summary), "{text:?} recalled {summary:?}");
        }
    }
    assert!(!relevant("Hi!", BIKE));
    assert!(!relevant("What is my laptop's ip?", LAPTOP_PORT));
}

#[test]
fn a_question_about_an_earlier_topic_recalls_its_gist() {
    for text in [
        "What colour is my bike?",
        "What is my bike's brand?",
        "Tell me about my bike.",
        "What do you know about my bike?",
    ] {
        assert!(relevant(text, BIKE), "{text:?}");
        assert!(!relevant(text, LAPTOP_PORT), "{text:?}");
    }
    assert!(relevant(
        "Which port did I give for my laptop?",
        LAPTOP_PORT
    ));
    assert!(relevant("What city do I live in?", CITY));
    // Stating the same κ again is that conversation's topic.
    assert!(relevant("My bike's colour is red now.", BIKE));
    // Asking again what that conversation asked.
    assert!(relevant("Which city is the capital of France?", ASKED));
}

#[test]
fn a_reference_to_an_earlier_conversation_recalls_gists() {
    for text in [
        "What did we talk about earlier?",
        "What did we talk about last time?",
        "Remind me what we discussed yesterday.",
        "Do you remember our previous conversation?",
    ] {
        for summary in [BIKE, LAPTOP_PORT, CITY] {
            assert!(relevant(text, summary), "{text:?} missed {summary:?}");
        }
    }
    // A topic named with the reference picks the conversations about it, first.
    let about_bike = "What did we talk about regarding my bike?";
    assert_eq!(gist_relevance(about_bike, BIKE), Some(1));
    assert!(!relevant(about_bike, LAPTOP_PORT));
    assert!(!relevant("What did we talk about regarding my boat?", BIKE));
    assert!(relevant(
        "What exactly did I say about my bike in that conversation?",
        BIKE
    ));
    assert!(relevant(
        "Remind me what I told you about my laptop.",
        LAPTOP_PORT
    ));
}

#[test]
fn with_the_named_kappa_in_the_state_only_a_gist_of_that_kappa_is_recalled() {
    const BUILD_BOX: &str = "A conversation of 3 turns. The user told you about: your build \
                             box's ip. The user asked: What is my build box's IP?";
    const LOCKER: &str = "A conversation of 2 turns. The user asked: What is your locker code?";
    // Without the κ in the state these share enough to be recalled ("remind me" refers back,
    // half the words of a two-word question); with it, each is another κ.
    for (text, summary) in [
        ("Remind me of my cat's ip?", BUILD_BOX),
        ("Tell me my server's code.", LOCKER),
    ] {
        assert!(relevant(text, summary), "{text:?} unfocused");
        assert_eq!(focused_gist_relevance(text, summary), None, "{text:?}");
    }
    // The gist of that very κ, or of the same question, still comes.
    assert!(focused_gist_relevance("Remind me of my build box's ip?", BUILD_BOX).is_some());
    assert!(focused_gist_relevance("What is my locker code?", LOCKER).is_some());
    assert!(focused_gist_relevance("What colour is my bike?", BIKE).is_some());
}
