//! Gists of earlier conversations: the summary consolidation writes for each
//! ([`summarize`]: its length, the κ the user told about, what they asked) and which of them
//! a turn's text makes relevant ([`gist_relevance`]).

use std::collections::HashSet;

use super::query::{is_question, singular, wants_detail};

/// Most gists of earlier conversations put into one prompt.
pub const GISTS_PER_TURN: usize = 2;

/// Words that name no topic when a text is matched against a gist: function and question
/// words, the words of a reference to an earlier conversation ("what did we talk about
/// earlier?"), times, and the gist template's own words.
const GIST_FILLER: &str = "\
    a about again ago all also am an and any anything are as asked at be been before by can \
    chat chatted conversation conversations could day days detail did discuss discussed do \
    does earlier evening ever everything exactly for from full had has have hey hi how i in is \
    it its just know last me mention mentioned morning my of on or other our please previous \
    previously recall regarding remember remind said say so something spoke talk talked \
    talking tell that the then there this time to today told transcript turns us user was we \
    week were what when where which who whole why with word would yesterday you your";

/// Phrases by which a text refers to an earlier conversation.
const PAST_MARKERS: &[&str] = &[
    "earlier",
    "last time",
    "before",
    "previous",
    "remind me",
    "we talk",
    "we talked",
    "we discuss",
    "we spoke",
    "we chat",
    "conversation",
    "did i say",
    "did i tell",
    "did i mention",
    "i told you",
    "i mentioned",
    "do you remember",
    "recall",
];

/// The topic words of a text: lower-case alphanumeric words less [`GIST_FILLER`], plurals
/// read as singular ("hobbies" → "hobby", "ports" → "port").
fn gist_words(text: &str) -> HashSet<String> {
    static FILLER: std::sync::OnceLock<HashSet<&str>> = std::sync::OnceLock::new();
    let filler = FILLER.get_or_init(|| GIST_FILLER.split_whitespace().collect());
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1 && !filler.contains(w))
        .map(singular)
        .collect()
}

/// A gist's topics (the κ the user told about, "your bike's colour") and the questions the
/// user asked, read back from the summary [`summarize`] writes.
fn gist_parts(summary: &str) -> (Vec<&str>, Vec<&str>) {
    const TOLD: &str = "The user told you about: ";
    const ASKED: &str = "The user asked: ";
    let (head, asked) = summary.split_once(ASKED).unwrap_or((summary, ""));
    let topics = head
        .split_once(TOLD)
        .map(|(_, told)| told.trim().trim_end_matches('.'))
        .map(|told| told.split(", ").filter(|t| !t.is_empty()).collect())
        .unwrap_or_default();
    let questions = asked
        .split_inclusive('?')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .collect();
    (topics, questions)
}

/// Whether a gist is relevant to the text, and if so how many topic words they share (more
/// first). A gist is relevant when the text
///
/// - names one of its topics (every word of a κ: "What colour is my bike?" for "your bike's
///   colour"; a statement of the same κ is a restatement of what that conversation said);
/// - asks again about what that conversation asked (half or more of a question's words);
/// - is a question whose topic words all belong to the gist's topics ("Tell me about my
///   bike");
/// - refers to an earlier conversation ("what did we talk about regarding my bike?", "last
///   time", "remind me what I told you …") and shares a topic word with it, or names no
///   topic at all ("What did we talk about earlier?": every gist is, best scored first).
///
/// Neither the summary's cosine nor a shared word alone is enough: gists are built from one
/// template ("A conversation of N turns. The user told you about: your laptop's port."), so
/// every short fact statement embeds close to every gist, and a shared owner or facet ("my
/// boat's colour" beside "your bike's colour") is another κ, which the model would only
/// confuse with this one.
pub fn gist_relevance(text: &str, summary: &str) -> Option<usize> {
    GistQuery::new(text).relevance(summary)
}

/// [`gist_relevance`] when the memory state already holds the κ the text names (see
/// [`GistQuery::focused`]).
pub fn focused_gist_relevance(text: &str, summary: &str) -> Option<usize> {
    GistQuery::new(text).focused(true).relevance(summary)
}

/// What [`gist_relevance`] reads from the text, read once for all the stored gists.
pub(super) struct GistQuery {
    /// Its topic words ([`gist_words`]).
    words: HashSet<String>,
    /// It refers to an earlier conversation.
    past: bool,
    /// It is a question.
    question: bool,
    /// The memory state already holds the κ the text names ([`GistQuery::focused`]).
    focused: bool,
}

impl GistQuery {
    pub(super) fn new(text: &str) -> GistQuery {
        let lower = text.to_lowercase();
        GistQuery {
            words: gist_words(text),
            past: wants_detail(text) || PAST_MARKERS.iter().any(|m| lower.contains(m)),
            question: is_question(text),
            focused: false,
        }
    }

    /// The memory state holds facts of the κ the text names: then only a gist of that κ is
    /// relevant (one that names it as a topic, or asked a question all of whose topic words
    /// the text has). A gist that shares only the owner or the facet ("Remind me of my
    /// cat's ip?" beside "your build box's ip", "Tell me my server's code." beside "What is
    /// your locker code?") is another κ, and the default model copied such a gist's text
    /// instead of the fact.
    pub(super) fn focused(self, focused: bool) -> GistQuery {
        GistQuery { focused, ..self }
    }

    /// Whether any gist can be relevant: a text with no topic word that refers to no earlier
    /// conversation ("Hi!") matches none.
    pub(super) fn can_match(&self) -> bool {
        self.past || !self.words.is_empty()
    }

    /// How many of the text's topic words the gist shares, when it is relevant at all.
    pub(super) fn relevance(&self, summary: &str) -> Option<usize> {
        let words = &self.words;
        let (topics, questions) = gist_parts(summary);
        let topics: Vec<HashSet<String>> = topics.into_iter().map(gist_words).collect();
        let questions: Vec<HashSet<String>> = questions.into_iter().map(gist_words).collect();
        let told: HashSet<&String> = topics.iter().flatten().collect();
        let shared = words
            .iter()
            .filter(|w| told.contains(w) || questions.iter().any(|q| q.contains(*w)))
            .count();
        let names_topic = topics.iter().any(|t| !t.is_empty() && t.is_subset(words));
        let asks_again = questions.iter().any(|q| {
            let common = q.intersection(words).count();
            common > 0 && 2 * common >= q.len()
        });
        if self.focused {
            let asks_all = questions
                .iter()
                .any(|q| !q.is_empty() && q.is_subset(words));
            return (names_topic || asks_all).then_some(shared);
        }
        let within_topics =
            self.question && !words.is_empty() && words.iter().all(|w| told.contains(w));
        let recalls_past = self.past && (words.is_empty() || shared > 0);
        (names_topic || asks_again || within_topics || recalls_past).then_some(shared)
    }
}

/// A conversation's gist: its length, what the user told (κ only, never values — a value
/// changed later must not come back through an old gist) and what they asked.
pub(super) fn summarize(turns: usize, topics: &[String], asked: &[String]) -> String {
    let mut parts = vec![format!("A conversation of {turns} turns.")];
    if !topics.is_empty() {
        parts.push(format!("The user told you about: {}.", topics.join(", ")));
    }
    if !asked.is_empty() {
        let questions: Vec<&str> = asked.iter().take(3).map(String::as_str).collect();
        parts.push(format!("The user asked: {}", questions.join(" ")));
    }
    parts.join(" ")
}

/// "user.server" + "ip" → "your server's ip"; "user" + "city" → "your city".
pub(super) fn describe_kappa(subject: &str, facet: &str) -> String {
    let facet = facet.replace('_', " ");
    match subject.strip_prefix("user.") {
        Some(owner) => format!("your {} {facet}", possessive(owner)),
        None if subject == "user" => format!("your {facet}"),
        None => format!("{subject}'s {facet}"),
    }
}

/// An owner (`build_box`, `kids`) in the possessive: "build box's", "kids'".
pub(super) fn possessive(owner: &str) -> String {
    let owner = owner.replace('_', " ");
    let last = owner.rsplit(' ').next().unwrap_or_default().to_lowercase();
    if super::query::is_plural(&last) {
        format!("{owner}'")
    } else {
        format!("{owner}'s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappas_read_as_the_users_things() {
        assert_eq!(describe_kappa("user.server", "ip"), "your server's ip");
        assert_eq!(
            describe_kappa("user", "favourite_colour"),
            "your favourite colour"
        );
        assert_eq!(describe_kappa("user.kids", "names"), "your kids' names");
        assert_eq!(
            describe_kappa("user.build_box", "code"),
            "your build box's code"
        );
    }
}
