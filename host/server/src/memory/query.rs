//! Reading what the user's text asks for: its words, whether it is a question, the κ
//! (owner and facet) it names, and whether it asks to forget, corrects a value or wants the
//! detail of an earlier conversation.

use std::collections::HashSet;

/// Words a question starts with (a text that ends with "?" is one too).
const QUESTION_STARTS: &[&str] = &[
    "what", "which", "who", "where", "when", "how", "why", "tell", "remind", "describe", "do",
    "did", "does", "is", "are", "have", "can",
];

/// Whether the text is a question: it ends with "?" or its first word is a question word
/// ([`QUESTION_STARTS`]: "Tell me my printer's nickname" is one).
pub fn is_question(text: &str) -> bool {
    text.trim_end().ends_with('?')
        || text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .is_some_and(|w| QUESTION_STARTS.contains(&w))
}

/// Words that end in "s" and are singular, beyond the endings [`is_plural`] already reads
/// as singular ("-ss", "-us", "-is").
const SINGULAR_IN_S: &[&str] = &[
    "alias", "atlas", "bias", "canvas", "gas", "lens", "news", "series", "species", "physics",
    "gps", "dns", "sms", "ios",
];

/// Whether a lower-case English noun is plural by its ending: "ports", "hobbies", not
/// "address", "status", "axis" or "alias". The rare plurals in "-is" ("skis", "taxis") and
/// "-us" ("menus") read as singular.
pub fn is_plural(word: &str) -> bool {
    word.len() > 3
        && word.ends_with('s')
        && !["ss", "us", "is"].iter().any(|end| word.ends_with(end))
        && !SINGULAR_IN_S.contains(&word)
}

/// A lower-case word in its singular form, read by its ending ("hobbies" → "hobby",
/// "ports" → "port"), so that a plural and its singular match.
pub fn singular(word: &str) -> String {
    match word.strip_suffix("ies").filter(|stem| stem.len() > 2) {
        Some(stem) => format!("{stem}y"),
        None if is_plural(word) => word[..word.len() - 1].to_string(),
        None => word.to_string(),
    }
}

/// The lower-case alphanumeric words of a query, read once per turn for [`names_owner`] and
/// [`asks_for_facet`]. "For a living" is read as the word "occupation" ("What do I do for a
/// living?" asks for the job, not the city its "living" would cue), and so is "for work" after
/// "do" ("What do I do for work?" asks for the job, not the employer).
pub fn query_words(query: &str) -> HashSet<String> {
    query
        .to_lowercase()
        .replace("for a living", "occupation")
        .replace("do for work", "do occupation")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the query ([`query_words`]) names the subject of a user fact: `user` is named by
/// "my"; the owner of `user.build_box` by all of "build" and "box".
pub fn names_owner(words: &HashSet<String>, subject: &str) -> bool {
    let lower = subject.to_lowercase();
    match lower.strip_prefix("user.") {
        Some(owner) => owner
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .all(|w| words.contains(w)),
        None => lower == "user" && (words.contains("my") || words.contains("i")),
    }
}

/// The facets the capture plugin's built-in statement patterns write whose name a question
/// about them rarely contains ("I live in Lisbon" → `city`, asked as "Where do I live?"),
/// each with the cues that ask for it: a word, or words separated by a space that must all
/// be in the question ("when born": "When was I born?" asks for the year, "Where was I
/// born?" for the hometown). The first facet a question cues is the one it asks for.
const FACET_CUES: &[(&str, &[&str])] = &[
    (
        "job",
        &["job", "occupation", "profession", "career", "does do"],
    ),
    ("birth_year", &["when born", "year born"]),
    ("birthday", &["birthday", "when born"]),
    ("city", &["live", "lives", "living", "reside"]),
    ("hometown", &["from", "grew", "where born", "birthplace"]),
    ("allergies", &["allergic", "allergy", "allergies"]),
    ("diet", &["diet", "vegetarian", "vegan"]),
    ("car", &["car", "what drive", "which drive", "do drive"]),
    (
        "languages",
        &[
            "language",
            "languages",
            "what speak",
            "which speak",
            "do speak",
        ],
    ),
    ("prefers", &["prefer", "prefers", "rather"]),
    (
        "plays",
        &["what play", "which play", "do play", "instrument", "sport"],
    ),
    ("dislikes", &["hate", "hates", "dislike", "dislikes"]),
    (
        "avoids",
        &["can eat", "don eat", "not eat", "avoid", "avoids"],
    ),
    (
        "school",
        &["school", "study", "studies", "college", "university"],
    ),
    (
        "employer",
        &["work", "works", "working", "job", "employer", "company"],
    ),
    ("age", &["old", "age"]),
    ("name", &["name", "called", "call"]),
    ("likes", &["like", "likes", "love", "enjoy"]),
];

/// Whether the query ([`query_words`]) asks for `facet` by one of its cue words
/// ([`FACET_CUES`]), for the facets a question names in other words than the stored facet.
pub fn asks_for_facet(words: &HashSet<String>, facet: &str) -> bool {
    FACET_CUES
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(facet))
        .is_some_and(|(_, cues)| cues.iter().any(|cue| cue_heard(words, cue)))
}

/// Whether the query's words hold every word of a cue of [`FACET_CUES`].
fn cue_heard(words: &HashSet<String>, cue: &str) -> bool {
    cue.split(' ').all(|w| words.contains(w))
}

/// The user's own facet a question asks for in its cue words with the user as its subject
/// ("Where do I live?" → `city`, "How old am I?" → `age`): the question's words
/// ([`query_words`]) hold "i" but neither "my" (that question names its κ, [`asked_kappa`])
/// nor "you"/"your" (a question to the assistant).
pub fn asked_user_facet(text: &str) -> Option<&'static str> {
    let words = query_words(text);
    let about_user =
        words.contains("i") && !["my", "you", "your"].iter().any(|w| words.contains(*w));
    if !is_question(text) || !about_user {
        return None;
    }
    cued_facet(&words)
}

/// The first facet of [`FACET_CUES`] the query's words ([`query_words`]) ask for by a cue
/// ("old" → `age`), if any.
pub fn cued_facet(words: &HashSet<String>) -> Option<&'static str> {
    FACET_CUES
        .iter()
        .find(|(_, cues)| cues.iter().any(|cue| cue_heard(words, cue)))
        .map(|(facet, _)| *facet)
}

/// Whether the text asks what memory holds about the user: "What do you know about me?",
/// "What do you remember about me?", "What have I told you?", "Tell me what you know of me".
pub fn asks_what_is_known(text: &str) -> bool {
    let lower = text.trim().to_lowercase().replace('’', "'");
    let knows = [
        "know", "remember", "recall", "stored", "store", "keep", "have",
    ]
    .iter()
    .any(|verb| lower.contains(&format!("you {verb}")));
    let about_me = [" about me", " of me", " on me"]
        .iter()
        .any(|tail| lower.contains(tail));
    let told = [
        "what have i told you",
        "what did i tell you",
        "what i have told you",
        "what i told you",
    ]
    .iter()
    .any(|p| lower.contains(p));
    (knows && about_me) || told
}

/// Words that make a text more than a statement: it asks for something besides stating it
/// ("…, remind me to buy a gift", "… and he is sick, what should I do").
const REQUEST_WORDS: &[&str] = &[
    "what",
    "which",
    "who",
    "where",
    "when",
    "how",
    "why",
    "tell",
    "remind",
    "describe",
    "please",
    "help",
    "write",
    "make",
    "give",
    "show",
    "find",
    "explain",
    "should",
    "could",
    "would",
    "can",
    "let",
    "need",
    "want",
    "suggest",
    "recommend",
];

/// Words a greeting or a thank-you is made of ("Hi!", "Hello there.", "Thanks a lot!").
const GREETING_WORDS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "there",
    "thanks",
    "thank",
    "you",
    "a",
    "lot",
    "ok",
    "okay",
    "good",
    "morning",
    "afternoon",
    "evening",
    "great",
    "cool",
    "so",
    "well",
    "oh",
];

/// Whether the text only states what memory captured: no question, no word that asks for
/// anything ([`REQUEST_WORDS`]), and each sentence either greets ("Hi!", "Thanks.") or holds
/// the statement of a captured fact (`statements`, as the capture plugin returned them).
/// "My server's IP is 10.0.0.7." and "Hi! My name is Ada and I live in Lyon." are; "My
/// server's IP is 10.0.0.7. Write me a ping command for it." is not, nor is "My car is red;
/// it needs a wash." (its second sentence holds nothing captured).
pub fn states_only(text: &str, statements: &[&str]) -> bool {
    let text = text.trim();
    let statements: Vec<String> = statements
        .iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let sentence_ok = |sentence: &str| {
        let lower = sentence.trim().to_lowercase();
        let greeting = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .all(|w| GREETING_WORDS.contains(&w));
        greeting || statements.iter().any(|s| lower.contains(s.as_str()))
    };
    !text.is_empty()
        && !statements.is_empty()
        && !is_question(text)
        // "I can't eat gluten" asks nothing: its "can" is a negation's.
        && !query_words(&text.to_lowercase().replace("can't", "cant").replace("cannot", "cant"))
            .iter()
            .any(|w| REQUEST_WORDS.contains(&w.as_str()))
        && sentences(text).all(sentence_ok)
}

/// The sentences of a text: cut after `.`, `!`, `?` or `;` where whitespace follows (so
/// "10.0.0.7" stays whole), without their end mark; empty ones left out.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    marked_sentences(text)
        .map(|sentence| sentence.trim_end_matches(['.', '!', '?', ';']).trim())
        .filter(|sentence| !sentence.is_empty())
}

/// The question a turn asks: its sentences that are questions ([`is_question`]), or the
/// whole text when none is ("My name is Ada. What is the capital of France?" asks "What is
/// the capital of France?", which names none of the user's facts).
pub fn question_part(text: &str) -> String {
    let questions: Vec<&str> = marked_sentences(text).filter(|s| is_question(s)).collect();
    if questions.is_empty() {
        text.to_string()
    } else {
        questions.join(" ")
    }
}

/// The sentences of a text as [`sentences`] cuts them, with their end mark.
fn marked_sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.trim().is_empty() {
            return None;
        }
        let cut = rest
            .char_indices()
            .find(|&(i, c)| {
                matches!(c, '.' | '!' | '?' | ';')
                    && rest[i + c.len_utf8()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_whitespace)
            })
            .map_or(rest.len(), |(i, c)| i + c.len_utf8());
        let (sentence, tail) = rest.split_at(cut);
        rest = tail;
        let sentence = sentence.trim();
        if !sentence.is_empty() {
            return Some(sentence);
        }
    })
}

/// Words that end the facet of an asked κ ("… my kayak's name is?", "… my bike's code
/// again?") and are not part of it.
const AFTER_FACET: &[&str] = &["is", "are", "was", "were", "again", "now", "please", "then"];

/// Words that are never part of an owner's or a facet's name.
const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "an", "of", "to", "in", "on", "for", "and", "or", "you", "me", "i", "my", "your",
    "it", "that", "this", "what", "which",
];

/// The κ (subject, facet, in the capture plugin's form: `user.build_box`, `lock_code`) a
/// question asks for in one of its plain shapes: "… my build box's lock code?", "… the IP
/// of my server?", "What model does my printer have?", or "… my favorite color?" (the
/// user's own facet). `None` for any other text, and for a subject or facet longer than
/// three words, which these shapes do not read reliably.
pub fn asked_kappa(text: &str) -> Option<(String, String)> {
    let lower = text.trim().to_lowercase().replace('’', "'");
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let my = words.iter().position(|w| *w == "my")?;
    // Up to three words, none of them a function word ("the", "of", "you"): a name, not
    // a phrase.
    let join = |ws: &[&str]| {
        (!ws.is_empty() && ws.len() <= 3 && !ws.iter().any(|w| FUNCTION_WORDS.contains(w)))
            .then(|| ws.join("_"))
    };
    let facet_from = |ws: &[&str]| {
        let end = ws
            .iter()
            .position(|w| AFTER_FACET.contains(w))
            .unwrap_or(ws.len());
        join(&ws[..end])
    };
    let after = &words[my + 1..];
    // "my build box's lock code", "my kids' names"
    if let Some(at) = after
        .iter()
        .position(|w| w.ends_with("'s") || w.ends_with("s'"))
    {
        let mut owner = after[..=at].to_vec();
        let last = owner[at].strip_suffix("'s").unwrap_or(owner[at]);
        owner[at] = last.trim_end_matches('\'');
        return Some((
            format!("user.{}", join(&owner)?),
            facet_from(&after[at + 1..])?,
        ));
    }
    // "what is my dog called", "what are my kids named": the name of what "my" names.
    if let [owner @ .., "called" | "named"] = after {
        let owner = facet_from(owner)?;
        let plural = owner.rsplit('_').next().is_some_and(is_plural);
        let facet = if plural { "names" } else { "name" };
        return Some((format!("user.{owner}"), facet.to_string()));
    }
    let before = &words[..my];
    // "the ip of my server", "what model does my printer have"
    let owner_words = |ws: &[&str]| {
        let end = ws
            .iter()
            .position(|w| {
                ["have", "has", "use", "uses", "got"].contains(w) || AFTER_FACET.contains(w)
            })
            .unwrap_or(ws.len());
        join(&ws[..end])
    };
    if before.len() >= 2 && before[my - 1] == "of" {
        let start = before[..my - 1].iter().rposition(|w| *w == "the")? + 1;
        let facet = join(&before[start..my - 1])?;
        return Some((format!("user.{}", owner_words(after)?), facet));
    }
    if my >= 2 && ["does", "do", "did"].contains(&before[my - 1]) {
        let start = before[..my - 1]
            .iter()
            .rposition(|w| ["what", "which"].contains(w))?
            + 1;
        let facet = join(&before[start..my - 1])?;
        return Some((format!("user.{}", owner_words(after)?), facet));
    }
    // "what is my favorite color": a facet of the user's own, asked as a question; "Can I
    // tell you about my day?" asks leave to speak, not for a fact.
    let asks_leave = ["can", "could", "may", "shall", "should"].contains(&words[0])
        && matches!(words.get(1), Some(&"i") | Some(&"we"));
    if is_question(text) && !asks_leave {
        return Some(("user".to_string(), facet_from(after)?));
    }
    None
}

/// The κ a question asks for by a cue word about one of the user's beings or things ("Where
/// does my wife work?" → (`user.wife`, `employer`), "How old is my son?" → (`user.son`,
/// `age`)): the one or two words after "my" up to a cue, a verb or a function word name the
/// owner, the cue ([`cued_facet`]) the facet. `None` without a cue, an owner, or with a
/// possessive ("my wife's …", which [`asked_kappa`] reads).
pub fn asked_owner_facet(text: &str) -> Option<(String, String)> {
    if !is_question(text) {
        return None;
    }
    let words = query_words(text);
    let facet = cued_facet(&words)?;
    let lower = text.trim().to_lowercase().replace('’', "'");
    let said: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let my = said.iter().position(|w| *w == "my")?;
    let cue_word = |w: &str| {
        FACET_CUES
            .iter()
            .flat_map(|(_, cues)| cues.iter())
            .any(|cue| cue.split(' ').any(|c| c == w))
    };
    let owner: Vec<&str> = said[my + 1..]
        .iter()
        .take_while(|w| {
            !cue_word(w)
                && !AFTER_FACET.contains(w)
                && !FUNCTION_WORDS.contains(w)
                && !["do", "does", "did", "have", "has"].contains(w)
        })
        .copied()
        .collect();
    if owner.is_empty() || owner.len() > 2 || owner.iter().any(|w| w.contains('\'')) {
        return None;
    }
    // "What are my kids called?" asks for their names.
    let plural = owner.last().is_some_and(|w| is_plural(w));
    let facet = if facet == "name" && plural {
        "names"
    } else {
        facet
    };
    Some((format!("user.{}", owner.join("_")), facet.to_string()))
}

/// How a yes/no question about a stored value is answered: "Do I live in Lyon?" with
/// `Lyon` stored → `Some(true)`; "Do I live in Paris?" → `Some(false)` (one value holds at a
/// time); for a `collection` ("Do I like pizza?" with `sushi`) a value the question does not
/// name says nothing of the one it names → `None`. `None` for a question that is not yes/no
/// ("Where do I live?", "Do you know where I live?").
pub fn yes_no_verdict(question: &str, value: &str, collection: bool) -> Option<bool> {
    let words: Vec<String> = question
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let yes_no = matches!(
        words.first().map(String::as_str),
        Some("do" | "does" | "did" | "am" | "is" | "are" | "was" | "were" | "have" | "has")
    ) && words.get(1).is_some_and(|w| w != "you")
        // "Do I prefer mornings or evenings?" asks which, not whether.
        && !words.iter().any(|w| w == "or");
    if !yes_no {
        return None;
    }
    let asked: HashSet<&str> = words.iter().map(String::as_str).collect();
    let named = value
        .split(", ")
        .flat_map(|item| item.split(" and "))
        .any(|item| {
            let item = item.to_lowercase();
            let mut item_words = item
                .split(|c: char| !(c.is_alphanumeric() || c == '\''))
                .filter(|w| !w.is_empty() && !["a", "an", "the"].contains(w))
                .peekable();
            item_words.peek().is_some() && item_words.all(|w| asked.contains(w))
        });
    match (named, collection) {
        (true, _) => Some(true),
        (false, false) => Some(false),
        (false, true) => None,
    }
}

/// Whether the user asks for the detail of an earlier conversation.
pub fn wants_detail(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "in detail",
        "exactly",
        "full conversation",
        "whole conversation",
        "word for word",
        "transcript",
        "what did i say",
        "what did i tell",
    ]
    .iter()
    .any(|marker| lower.contains(marker))
}

/// The value of a correction such as "Actually it's 10.0.0.9" or "No, it is Porto."
pub(super) fn correction_value(text: &str) -> Option<&str> {
    let lower = text.trim().to_lowercase();
    let starts = [
        "actually ",
        "actually, ",
        "no, ",
        "no ",
        "correction: ",
        "sorry, ",
        "",
    ];
    let verbs = ["it's ", "it is ", "its ", "that's ", "that is "];
    for start in starts {
        for verb in verbs {
            let prefix = format!("{start}{verb}");
            if lower.starts_with(&prefix) {
                let value = text.trim()[prefix.len()..]
                    .trim()
                    .trim_end_matches(['.', '!']);
                let words = value.split_whitespace().count();
                return (1..=4).contains(&words).then_some(value);
            }
        }
    }
    None
}

/// Whether the user's text asks to forget something.
pub fn is_forget_request(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    ["forget ", "please forget ", "erase ", "stop remembering "]
        .iter()
        .any(|marker| lower.starts_with(marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_of_captured_facts_only_state() {
        for (text, captured) in [
            (
                "My server's IP is 10.0.0.7.",
                &["My server's IP is 10.0.0.7"][..],
            ),
            ("I live in Lisbon", &["I live in Lisbon"]),
            (
                "FYI my router's password is hunter2!",
                &["my router's password is hunter2"],
            ),
            (
                "The version of my app is 1.2.3.",
                &["The version of my app is 1.2.3"],
            ),
            (
                "Hi! My name is Ada and I live in Lyon.",
                &["My name is Ada", "I live in Lyon"],
            ),
            (
                "I live in Lyon. I work at Acme. Thanks!",
                &["I live in Lyon", "I work at Acme"],
            ),
            ("I can't eat gluten.", &["I can't eat gluten"]),
        ] {
            assert!(states_only(text, captured), "{text}");
        }
        for (text, captured) in [
            (
                "My server's IP is 10.0.0.7. Write me a ping command for it.",
                &["My server's IP is 10.0.0.7"][..],
            ),
            (
                "My dog's name is Rex and he is sick, what should I do",
                &["My dog's name is Rex and he is sick, what should I do"],
            ),
            (
                "My sister's birthday is March 3, remind me to buy a gift.",
                &["My sister's birthday is March 3, remind me to buy a gift"],
            ),
            ("What is my server's IP?", &[]),
            ("My car is red; it needs a wash.", &["My car is red"]),
            ("I live in Lyon. The weather is awful.", &["I live in Lyon"]),
            ("Hi!", &[]),
            ("", &[]),
        ] {
            assert!(!states_only(text, captured), "{text}");
        }
    }

    #[test]
    fn questions_about_the_user_name_their_facet_or_ask_for_everything() {
        assert_eq!(asked_user_facet("Where do I live?"), Some("city"));
        assert_eq!(asked_user_facet("How old am I?"), Some("age"));
        assert_eq!(asked_user_facet("Where do I work now?"), Some("employer"));
        assert_eq!(asked_user_facet("How old is my dog?"), None);
        assert_eq!(asked_user_facet("What do I call you?"), None);
        assert_eq!(asked_user_facet("I live in Lyon"), None);
        for text in [
            "What do you know about me?",
            "what do you remember about me",
            "Tell me what you know of me.",
            "What have I told you so far?",
            "What information do you have on me?",
        ] {
            assert!(asks_what_is_known(text), "{text}");
        }
        for text in [
            "What do you know?",
            "Tell me about yourself",
            "What did you say about Lyon?",
        ] {
            assert!(!asks_what_is_known(text), "{text}");
        }
    }

    #[test]
    fn who_is_my_x_asks_for_x() {
        assert_eq!(
            asked_kappa("Who is my wife?"),
            Some(("user".to_string(), "wife".to_string()))
        );
    }

    #[test]
    fn sentences_keep_dotted_values_whole() {
        let got: Vec<&str> = sentences("Hi! My IP is 10.0.0.7. Done;  ok?").collect();
        assert_eq!(got, ["Hi", "My IP is 10.0.0.7", "Done", "ok"]);
    }

    #[test]
    fn plain_questions_name_the_kappa_they_ask_for() {
        let kappa = |text: &str| asked_kappa(text).map(|(s, f)| format!("{s}/{f}"));
        let cases = [
            ("What is my server's IP?", Some("user.server/ip")),
            (
                "Remind me of my build box's lock code again?",
                Some("user.build_box/lock_code"),
            ),
            (
                "Do you know what my kayak's name is?",
                Some("user.kayak/name"),
            ),
            ("What's the email of my cat?", Some("user.cat/email")),
            (
                "Tell me the lock code of my bike.",
                Some("user.bike/lock_code"),
            ),
            (
                "What model does my printer have?",
                Some("user.printer/model"),
            ),
            ("What is my favorite color?", Some("user/favorite_color")),
            ("What are my kids' names?", Some("user.kids/names")),
            ("What are my kids called?", Some("user.kids/names")),
            ("What is my dog named?", Some("user.dog/name")),
            ("What are the names of my kids?", Some("user.kids/names")),
            ("My server's IP is 10.0.0.7.", Some("user.server/ip")),
            ("Where do I live?", None),
            ("What can you do?", None),
            ("Can I speak to you about my day?", None),
            ("Can we talk about my plans?", None),
            ("Is my the of?", None),
            ("What is my very long winded question about things?", None),
        ];
        for (text, want) in cases {
            assert_eq!(kappa(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn text_whose_lower_case_changes_length_reads_without_panicking() {
        for text in [
            "What is my İstanbul flat's number?",
            "İİİ my İİİ's İİİ is İİİ?",
            "Actually it's İzmir",
            "Is my name İlker?",
            "Where does my İpek work?",
            "ẞ. ẞ? ẞ! My ẞ is ẞ.",
            "Forget my İP",
        ] {
            let _ = (
                asked_kappa(text),
                asked_owner_facet(text),
                question_part(text),
            );
            let _ = (correction_value(text), yes_no_verdict(text, "İ", false));
            let _ = (states_only(text, &["My ẞ is ẞ"]), is_forget_request(text));
            let _ = (
                wants_detail(text),
                asks_what_is_known(text),
                asked_user_facet(text),
            );
        }
    }

    #[test]
    fn the_question_of_a_turn_is_its_question_sentences() {
        assert_eq!(
            question_part("My name is Ada. What is the capital of France?"),
            "What is the capital of France?"
        );
        assert_eq!(question_part("What's my name?"), "What's my name?");
        assert_eq!(question_part("My IP is 10.0.0.7."), "My IP is 10.0.0.7.");
        assert_eq!(
            asked_kappa(&question_part("My name is Ada. Where is Paris?")),
            None
        );
    }

    #[test]
    fn a_cue_about_a_being_asks_for_its_facet() {
        let kappa = |text: &str| asked_owner_facet(text).map(|(s, f)| format!("{s}/{f}"));
        assert_eq!(
            kappa("Where does my wife work?").as_deref(),
            Some("user.wife/employer")
        );
        assert_eq!(kappa("How old is my son?").as_deref(), Some("user.son/age"));
        assert_eq!(
            kappa("Where does my little sister live?").as_deref(),
            Some("user.little_sister/city")
        );
        assert_eq!(
            kappa("What are my kids called?").as_deref(),
            Some("user.kids/names")
        );
        assert_eq!(kappa("What is my job?"), None);
        assert_eq!(kappa("What's my wife's job?"), None);
        assert_eq!(kappa("Where do I live?"), None);
    }

    #[test]
    fn yes_no_questions_are_answered_by_whether_they_name_the_value() {
        assert_eq!(
            yes_no_verdict("Do I live in Lyon?", "Lyon", false),
            Some(true)
        );
        assert_eq!(
            yes_no_verdict("Do I live in Paris?", "Lyon", false),
            Some(false)
        );
        assert_eq!(yes_no_verdict("Is my name Ada?", "Ada", false), Some(true));
        assert_eq!(
            yes_no_verdict("Am I a nurse?", "a nurse", false),
            Some(true)
        );
        assert_eq!(
            yes_no_verdict("Do I like sushi?", "tea and sushi", true),
            Some(true)
        );
        assert_eq!(yes_no_verdict("Do I like pizza?", "sushi", true), None);
        assert_eq!(yes_no_verdict("Where do I live?", "Lyon", false), None);
        assert_eq!(
            yes_no_verdict("Do I prefer tea or coffee?", "tea", true),
            None
        );
        assert_eq!(
            yes_no_verdict("Do you know where I live?", "Lyon", false),
            None
        );
    }

    #[test]
    fn corrections_yield_their_value() {
        assert_eq!(correction_value("Actually it's 10.0.0.9"), Some("10.0.0.9"));
        assert_eq!(correction_value("No, it is Porto."), Some("Porto"));
        assert_eq!(
            correction_value("it's a long story about many things"),
            None
        );
        assert_eq!(correction_value("My server's IP is 10.0.0.7"), None);
    }

    #[test]
    fn questions_name_the_capture_facets_in_their_own_words() {
        assert!(asks_for_facet(&query_words("Where do I live?"), "city"));
        assert!(asks_for_facet(
            &query_words("Where do I work these days?"),
            "employer"
        ));
        assert!(asks_for_facet(&query_words("How old am I?"), "age"));
        assert!(asks_for_facet(&query_words("Where am I from?"), "hometown"));
        assert!(asks_for_facet(
            &query_words("What is my occupation?"),
            "job"
        ));
        let living = query_words("What do I do for a living?");
        assert!(asks_for_facet(&living, "job") && !asks_for_facet(&living, "city"));
        let work = query_words("What do I do for work?");
        assert!(asks_for_facet(&work, "job") && !asks_for_facet(&work, "employer"));
        assert!(asks_for_facet(
            &query_words("Where am I living now?"),
            "city"
        ));
        let when = query_words("When was I born?");
        assert_eq!(cued_facet(&when), Some("birth_year"));
        assert!(asks_for_facet(&when, "birthday") && !asks_for_facet(&when, "hometown"));
        assert_eq!(
            cued_facet(&query_words("Where was I born?")),
            Some("hometown")
        );
        assert_eq!(
            cued_facet(&query_words("What am I allergic to?")),
            Some("allergies")
        );
        assert_eq!(
            cued_facet(&query_words("What car do I drive?")),
            Some("car")
        );
        assert_eq!(
            cued_facet(&query_words("Which languages do I speak?")),
            Some("languages")
        );
        assert_eq!(
            cued_facet(&query_words("What does my sister do?")),
            Some("job")
        );
        assert_eq!(
            cued_facet(&query_words("What can't I eat?")),
            Some("avoids")
        );
        assert_eq!(
            cued_facet(&query_words("Which school does my son go to?")),
            Some("school")
        );
        // "Can I speak to you about my day?" asks for no language.
        assert_eq!(
            cued_facet(&query_words("Can I speak to you about my day?")),
            None
        );
        assert!(!asks_for_facet(
            &query_words("Where do I live?"),
            "employer"
        ));
        assert!(!asks_for_facet(
            &query_words("What is my server's ip?"),
            "city"
        ));
        // Facets outside the table are matched by their own name only (the store's job).
        assert!(!asks_for_facet(&query_words("Where do I live?"), "ip"));
    }

    #[test]
    fn forget_requests_are_recognised() {
        assert!(is_forget_request("Forget my server's IP"));
        assert!(is_forget_request("  please forget where I live"));
        assert!(!is_forget_request("I never forget a face"));
        assert!(!is_forget_request("What is my server's IP?"));
    }

    #[test]
    fn questions_are_recognised_with_or_without_a_question_mark() {
        assert!(is_question("What is my server's ip?"));
        assert!(is_question("Tell me my printer's nickname."));
        assert!(is_question("What's the port of my laptop"));
        assert!(is_question("Describe yourself"));
        assert!(!is_question("My server's ip is 10.1.1.1."));
        assert!(!is_question("You are great."));
    }

    #[test]
    fn plurals_are_read_by_their_ending() {
        for plural in ["ports", "hobbies", "pets", "keys", "cats"] {
            assert!(is_plural(plural), "{plural}");
        }
        for one in [
            "alias", "status", "address", "axis", "news", "pin", "gps", "bus",
        ] {
            assert!(!is_plural(one), "{one}");
        }
        assert_eq!(singular("hobbies"), "hobby");
        assert_eq!(singular("ports"), "port");
        assert_eq!(singular("alias"), "alias");
        assert_eq!(singular("status"), "status");
    }
}
