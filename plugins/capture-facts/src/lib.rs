//! `capture-facts`: rule-based fact capture.
//!
//! Admission rules: a sentence is skipped when it is a question (ends with `?` or
//! starts with a question word), a request (`please …`, `can you …`, an
//! imperative such as `tell me …`), and a whole turn when it asks to forget. Otherwise
//! each sentence is matched against statement patterns and turned into
//! (subject, facet, typed value):
//!
//! - `my <thing>'s <facet> is <value>` → (`user.<thing>`, `<facet>`, value)
//! - `my <facet> is <value>` → (`user`, `<facet>`, value)
//! - `I live in <place>` → (`user`, `city`, place); `I'm from <place>` →
//!   (`user`, `hometown`, place); `I work at|for <org>` → (`user`, `employer`,
//!   org); `I am <n> years old` → (`user`, `age`, `int:<n>`); `call me <name>`
//!   → (`user`, `name`, name); `I like|love|enjoy <thing>` → (`user`, `likes`, thing)
//! - `I work as a nurse`, `I'm a software engineer` (an occupation of [`OCCUPATIONS`]) →
//!   (`user`, `job`, "a nurse"); `… at|for <org>` adds (`user`, `employer`, org)
//! - `I'm allergic to <x>` → `allergies`; `I drive a <car>` → `car`; `I speak <Language>` →
//!   `languages`; `I prefer <x>` → `prefers`; `I play <x>` → `plays`; `I hate|dislike|don't
//!   like <x>` → `dislikes`; `I'm vegetarian` (a diet of [`DIETS`]) → `diet`; `I was born in
//!   1990|on March 3rd|in Lyon` → `birth_year` | `birthday` | `hometown`
//! - `I have two kids, Sam and Lily`, `I have 3 cats named Tom, Kit and Pip` → (`user`,
//!   `kids`, "Sam and Lily"), as `my kids are Sam and Lily` reads; `I have a son, Tom` →
//!   (`user.son`, `name`, "Tom"), as `I have a son named Tom` reads
//! - `my <being> [<Name>] <verb phrase>` ("My wife Julia works at Airbus", "My brother lives
//!   in Paris", "My son Tom is 7", "My sister is a doctor") → the being's name and the verb
//!   phrase's facet, about `user.<being>` (a being of [`NAMED_BEINGS`])
//!
//! - `the <facet> of my <thing> is <value>` → (`user.<thing>`, `<facet>`, value)
//!
//! A sentence may join several statements ("My name is Ada and I live in Lyon", "Hi, my
//! name is Ada"): it is cut at `and`, `but`, `;` or a comma wherever the rest states a fact
//! itself, and each clause is read on its own ("Simon and Garfunkel" stays one value, as
//! "Garfunkel" states nothing).
//!
//! A sentence may open with discourse markers ("Actually, …", "By the way …",
//! "Oh and …", "Update: …"); they are stripped before matching, so "Actually my
//! server's IP is 10.0.0.9" is captured like the plain statement. Values lose
//! additive or temporal adverbs ("also", "too", "as well", "now") — the host's
//! agency reads those from the statement to decide merge vs supersede.
//!
//! Values get a type prefix when their shape is recognised: `ip:`, `email:`,
//! `url:`, `date:` (YYYY-MM-DD), `int:`, `num:`; other values are kept as text.

use engram_plugin_sdk::capture::{Fact, Guest};

const QUESTION_WORDS: &[&str] = &[
    "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "is", "are", "am",
    "do", "does", "did", "can", "could", "would", "will", "should", "shall", "may", "have", "has",
];
const REQUEST_STARTS: &[&str] = &[
    "please",
    "tell me",
    "show me",
    "give me",
    "remind me",
    "help",
    "let's",
    "lets",
    "find",
    "list",
    "search",
    "write",
    "make",
    "create",
    "explain",
    "summarize",
    "summarise",
    "calculate",
    "i want you",
    "i need you",
    "i'd like you",
];
const FORGET_MARKERS: &[&str] = &[
    "forget",
    "don't remember",
    "do not remember",
    "delete",
    "erase",
    "stop remembering",
];

/// Discourse markers a statement may open with (longest first where one is a
/// prefix of another).
const DISCOURSE_MARKERS: &[&str] = &[
    "by the way",
    "just so you know",
    "for the record",
    "for your information",
    "just fyi",
    "fyi",
    "btw",
    "actually",
    "in fact",
    "well",
    "oh",
    "ok",
    "okay",
    "so",
    "and",
    "also",
    "anyway",
    "update",
    "correction",
    "note",
    "no",
    "sorry",
    "hey",
    "hi",
    "now",
];

/// The sentence without the discourse markers it opens with ("Actually, my …" → "my …").
pub fn strip_markers(sentence: &str) -> &str {
    let mut s = sentence.trim_start();
    loop {
        let lower = s.to_ascii_lowercase();
        let hit = DISCOURSE_MARKERS.iter().find(|m| {
            lower.starts_with(**m)
                && lower[m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c == ',' || c == ':' || c == ' ' || c == '-')
        });
        match hit {
            Some(m) => s = s[m.len()..].trim_start_matches([',', ':', ' ', '-']),
            None => return s,
        }
    }
}

/// The value without a trailing phrase of when it became true ("Paris last year" → "Paris",
/// "Acme in 2019", "Lyon 3 years ago", "Rome recently").
fn without_time_phrase(value: &str) -> &str {
    let lower = value.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let is_year = |w: &str| w.len() == 4 && w.chars().all(|c| c.is_ascii_digit());
    let is_unit = |w: &str| {
        let w = w.trim_end_matches('s');
        [
            "year", "month", "week", "day", "while", "summer", "winter", "spring", "fall",
        ]
        .contains(&w)
    };
    let cut = match words.as_slice() {
        [.., "last" | "this", unit] if is_unit(unit) => 2,
        [.., "a" | "one" | "two" | "few", unit, "ago"] if is_unit(unit) => 3,
        [.., n, unit, "ago"] if n.chars().all(|c| c.is_ascii_digit()) && is_unit(unit) => 3,
        [.., "in" | "since", year] if is_year(year) => 2,
        [.., "for", n, unit] if (count_word(n).is_some() || *n == "many") && is_unit(unit) => 3,
        [.., "yesterday" | "recently" | "today" | "lately"] => 1,
        _ => 0,
    };
    if cut == 0 || cut >= words.len() {
        return value;
    }
    // The byte offset where the last `cut` words begin.
    let mut at = value.len();
    for _ in 0..cut {
        at = value[..at]
            .trim_end()
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1);
    }
    value[..at].trim_end().trim_end_matches(',')
}

/// Pronouns that open a new clause after a value ("Lyon and I love it", "Rex, he is 3").
const CLAUSE_PRONOUNS: &[&str] = &[
    "i", "i'm", "im", "it", "it's", "its", "he", "he's", "she", "she's", "they", "they're", "we",
    "we're", "you", "that", "that's", "which", "who",
];

/// Whether lower-case text opens with a pronoun of [`CLAUSE_PRONOUNS`] ("she works …").
fn opens_clause(lower: &str) -> bool {
    let first = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .next()
        .unwrap_or("");
    CLAUSE_PRONOUNS.contains(&first)
}

/// Every place lower-case text may be cut at a joiner of [`JOINERS`] but its start: (where
/// the joiner begins, where it ends).
fn joiner_cuts(lower: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    JOINERS
        .iter()
        .flat_map(move |j| lower.match_indices(j).map(move |(i, _)| (i, i + j.len())))
        .filter(|&(i, _)| i > 0)
}

/// The text up to where a joiner opens a clause of its own ("Lyon and I love it" → "Lyon");
/// a list ("Tom, Kit and Pip") is left whole.
fn clause_head(value: &str) -> &str {
    let lower = value.to_ascii_lowercase();
    joiner_cuts(&lower)
        .filter(|&(_, end)| opens_clause(&lower[end..]))
        .map(|(i, _)| i)
        .min()
        .map_or(value, |i| &value[..i])
}

/// The value without additive/temporal adverbs ("also hiking" → "hiking",
/// "10.0.0.9 now" → "10.0.0.9").
fn bare_value(value: &str) -> &str {
    let mut v = clause_head(value.trim())
        .trim_end_matches(['.', '!', ',', ';'])
        .trim();
    loop {
        let lower = v.to_ascii_lowercase();
        let before = v.len();
        for lead in ["also ", "now ", "actually ", "instead "] {
            if lower.starts_with(lead) {
                v = v[lead.len()..].trim_start();
                break;
            }
        }
        v = without_time_phrase(v);
        let lower = v.to_ascii_lowercase();
        for tail in [" too", " as well", " now", " instead", " also", " either"] {
            if lower.ends_with(tail) {
                v = v[..v.len() - tail.len()].trim_end().trim_end_matches(',');
                break;
            }
        }
        if v.len() == before {
            return v;
        }
    }
}

/// Whether a whole turn must not be captured.
pub fn skip_turn(text: &str) -> bool {
    let t = strip_markers(text).trim().to_ascii_lowercase();
    if t.is_empty() || t.ends_with('?') {
        return true;
    }
    let first = t.split_whitespace().next().unwrap_or("");
    if QUESTION_WORDS.contains(&first) {
        return true;
    }
    if REQUEST_STARTS.iter().any(|r| t.starts_with(r)) {
        return true;
    }
    FORGET_MARKERS.iter().any(|m| t.contains(m))
}

/// The typed form of a value (`ip:10.0.0.7`, `int:42`, or the text itself).
pub fn typed_value(raw: &str) -> String {
    let v = raw.trim().trim_end_matches(['.', '!', ',', ';']).trim();
    let is_ipv4 = {
        let parts: Vec<&str> = v.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
    };
    if is_ipv4 {
        return format!("ip:{v}");
    }
    if v.contains('@') && !v.contains(' ') && v.rsplit('@').next().is_some_and(|d| d.contains('.'))
    {
        return format!("email:{}", v.to_ascii_lowercase());
    }
    if v.starts_with("http://") || v.starts_with("https://") {
        return format!("url:{v}");
    }
    let b = v.as_bytes();
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && v.chars().filter(|c| c.is_ascii_digit()).count() == 8
    {
        return format!("date:{v}");
    }
    if !v.is_empty() && v.parse::<i64>().is_ok() {
        return format!("int:{v}");
    }
    if v.parse::<f64>().is_ok_and(f64::is_finite) {
        return format!("num:{v}");
    }
    v.to_string()
}

fn key(words: &str) -> String {
    words
        .trim()
        .to_ascii_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !matches!(*w, "the" | "a" | "an"))
        .collect::<Vec<_>>()
        .join("_")
}

/// Split text into sentences on `.`, `!`, `;` or newline followed by space/end
/// (so the dots of `10.0.0.7` stay inside their sentence).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_is_break = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if (matches!(c, '.' | '!' | ';') && next_is_break) || c == '\n' {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn fact(subject: String, facet: String, value: &str, statement: &str) -> Option<Fact> {
    let value = typed_value(bare_value(value));
    if subject.is_empty() || facet.is_empty() || value.is_empty() {
        return None;
    }
    Some(Fact {
        subject,
        facet,
        value,
        statement: statement.to_string(),
    })
}

/// Who or what a "my X is called Y" names rather than describes: for these, Y is X's name
/// ("My dog is called Rex" → `user.dog`, `name`); for anything else Y is X itself ("My
/// favorite band is called Muse" → `user`, `favorite_band`, as it will be asked).
const NAMED_BEINGS: &[&str] = &[
    "dog",
    "cat",
    "pet",
    "puppy",
    "kitten",
    "fish",
    "bird",
    "parrot",
    "hamster",
    "rabbit",
    "horse",
    "turtle",
    "snake",
    "son",
    "daughter",
    "kid",
    "child",
    "baby",
    "boy",
    "girl",
    "brother",
    "sister",
    "wife",
    "husband",
    "partner",
    "boyfriend",
    "girlfriend",
    "friend",
    "mom",
    "mother",
    "dad",
    "father",
    "boss",
    "cousin",
    "uncle",
    "aunt",
];

/// "I have a dog named Rex", "I've got a cat called Tom" → (`user.dog`, `name`, "Rex");
/// "My dog is named Rex" the same, for a being of [`NAMED_BEINGS`]; "My favorite band is
/// called Muse" → (`user`, `favorite_band`, "Muse"). `s` is the sentence without its
/// markers, `lower` its lower case.
fn named_thing(s: &str, lower: &str, statement: &str) -> Option<Fact> {
    let have = [
        "i have a ",
        "i have an ",
        "i've got a ",
        "i've got an ",
        "i got a ",
    ]
    .iter()
    .find(|p| lower.starts_with(**p))
    .map(|p| p.len());
    let thing_at = have.or_else(|| lower.starts_with("my ").then_some(3))?;
    let rest = &lower[thing_at..];
    let verbs: &[&str] = if have.is_some() {
        &[" named ", " called "]
    } else {
        &[" is named ", " is called "]
    };
    let (i, len) = verbs
        .iter()
        .filter_map(|verb| rest.find(verb).map(|i| (i, verb.len())))
        .min()
        .filter(|&(i, _)| i > 0 && rest[..i].split_whitespace().count() <= 3)?;
    let thing = key(&s[thing_at..thing_at + i]);
    let value = &s[thing_at + i + len..];
    let being = thing
        .rsplit('_')
        .next()
        .is_some_and(|w| NAMED_BEINGS.contains(&w));
    if have.is_some() || being {
        fact(format!("user.{thing}"), "name".into(), value, statement)
    } else {
        fact("user".into(), thing, value, statement)
    }
}

/// Facts stated in one sentence.
pub fn sentence_facts(sentence: &str) -> Option<Fact> {
    let statement = sentence.trim();
    let s = strip_markers(statement);
    let lower = s.to_ascii_lowercase();
    // "the ip of my server is X": facet of owner
    if let Some(after) = lower.strip_prefix("the ") {
        if let Some(of) = after.find(" of my ") {
            let facet = &s[4..4 + of];
            let tail = &s[4 + of + " of my ".len()..];
            let tl = tail.to_ascii_lowercase();
            for cop in [" is ", " are ", " was "] {
                if let Some(ci) = tl.find(cop) {
                    return fact(
                        format!("user.{}", key(&tail[..ci])),
                        key(facet),
                        &tail[ci + cop.len()..],
                        statement,
                    );
                }
            }
        }
    }
    if let Some(fact) = named_thing(s, &lower, statement) {
        return Some(fact);
    }
    if let Some(after) = lower.strip_prefix("my ") {
        let body = &s[3..];
        // "my server's ip is X": owner 's facet
        if let Some(pos) = after.find("'s ") {
            let owner = &body[..pos];
            let tail = &body[pos + 3..];
            let tl = tail.to_ascii_lowercase();
            for cop in [" is ", " are ", " was "] {
                if let Some(ci) = tl.find(cop) {
                    return fact(
                        format!("user.{}", key(owner)),
                        key(&tail[..ci]),
                        &tail[ci + cop.len()..],
                        statement,
                    );
                }
            }
        }
        let bl = body.to_ascii_lowercase();
        for cop in [" is ", " are ", " was "] {
            if let Some(ci) = bl.find(cop) {
                return fact(
                    "user".into(),
                    key(&body[..ci]),
                    &body[ci + cop.len()..],
                    statement,
                );
            }
        }
        // "my name's Ada": the 's is the copula (only for the name: "my mom's lasagna" is a
        // possessive).
        if let Some(value) = after.strip_prefix("name's ") {
            return fact(
                "user".into(),
                "name".into(),
                &body[body.len() - value.len()..],
                statement,
            );
        }
        return None;
    }
    if let Some(fact) = stated_job(s, statement) {
        return Some(fact);
    }
    if let Some(fact) = named_group(s, statement) {
        return Some(fact);
    }
    // "I also speak German", "I now live in Rome": the adverb is read from the statement
    // (merge or supersede, by the host's agency); the verb's pattern matches without it.
    let adverb = [
        ("i also ", "i "),
        ("i now ", "i "),
        ("i still ", "i "),
        ("i'm also ", "i'm "),
        ("i'm originally ", "i'm "),
        ("i am originally ", "i am "),
        ("i originally come ", "i come "),
        ("i'm now ", "i'm "),
        ("i am also ", "i am "),
        ("i am now ", "i am "),
    ]
    .into_iter()
    .find(|(p, _)| lower.starts_with(p) && s.is_char_boundary(p.len()));
    let (s, lower) = match adverb {
        Some((p, plain)) => (
            format!("I{}{}", &plain[1..], &s[p.len()..]),
            format!("{plain}{}", &lower[p.len()..]),
        ),
        None => (s.to_string(), lower),
    };
    let (s, lower) = (s.as_str(), lower.as_str());
    let rest = |prefix: &str| s[prefix.len()..].trim().to_string();
    for (prefix, facet) in [
        ("i live in ", "city"),
        ("i am living in ", "city"),
        ("i'm living in ", "city"),
        ("i moved to ", "city"),
        ("i've been living in ", "city"),
        ("i have been living in ", "city"),
        ("i've lived in ", "city"),
        ("i have lived in ", "city"),
        ("i'm from ", "hometown"),
        ("i am from ", "hometown"),
        ("i come from ", "hometown"),
        ("i work at ", "employer"),
        ("i work for ", "employer"),
        ("i'm allergic to ", "allergies"),
        ("i am allergic to ", "allergies"),
        ("i drive ", "car"),
        ("i speak ", "languages"),
        ("i prefer ", "prefers"),
        ("i play ", "plays"),
        ("i can't eat ", "avoids"),
        ("i cannot eat ", "avoids"),
        ("i don't eat ", "avoids"),
        ("i do not eat ", "avoids"),
        ("i study at ", "school"),
        ("i go to ", "school"),
        ("i hate ", "dislikes"),
        ("i dislike ", "dislikes"),
        ("i don't like ", "dislikes"),
        ("i like ", "likes"),
        ("i love ", "likes"),
        ("i enjoy ", "likes"),
        ("call me ", "name"),
        ("i'm called ", "name"),
        ("i am called ", "name"),
    ] {
        if lower.starts_with(prefix) {
            let value = rest(prefix);
            // "I like it", "I love you": what is liked is not named.
            let said = bare_value(&value).to_ascii_lowercase();
            let first = said.split_whitespace().next().unwrap_or("");
            if matches!(facet, "likes" | "dislikes" | "prefers" | "plays")
                && (NOT_LIKED.contains(&said.as_str())
                    || ["it", "that", "this", "them", "you"].contains(&first))
            {
                return None;
            }
            // "I drive a Golf", not "I drive to work" / "I drive a lot"; "I speak French",
            // not "I speak slowly" (a language's name is capitalised).
            let car = ["a ", "an ", "the ", "my "]
                .iter()
                .any(|a| said.starts_with(a))
                && !["a lot", "a bit", "a little"].contains(&said.as_str());
            let language = value.chars().next().is_some_and(char::is_uppercase);
            if (facet == "car" && !car)
                || (facet == "languages" && !language)
                || (prefix == "i go to " && !names_a_school(&value))
            {
                return None;
            }
            return fact("user".into(), facet.into(), &value, statement);
        }
    }
    if let Some(fact) = stated_birth(s, statement) {
        return Some(fact);
    }
    for prefix in ["i am ", "i'm "] {
        if let Some(tail) = lower.strip_prefix(prefix) {
            if let Some(n) = stated_age(tail) {
                return fact("user".into(), "age".into(), n, statement);
            }
            let diet = tail
                .trim_start_matches("a ")
                .trim_end_matches(['.', '!'])
                .trim();
            if DIETS.contains(&diet) {
                return fact("user".into(), "diet".into(), diet, statement);
            }
            if let Some(name) = self_introduction(&s[prefix.len()..]) {
                return fact("user".into(), "name".into(), name, statement);
            }
        }
    }
    None
}

/// Head nouns of an occupation: "I'm a nurse", "I am an ER nurse", "I'm a software
/// engineer" state a job; "I'm a bit tired", "I'm a big fan of jazz" or "I'm a mother of
/// two" do not (what follows "I work as" is a job whatever its noun).
const OCCUPATIONS: &[&str] = &[
    "accountant",
    "actor",
    "actress",
    "administrator",
    "analyst",
    "architect",
    "artist",
    "assistant",
    "baker",
    "barista",
    "biologist",
    "builder",
    "carpenter",
    "cashier",
    "ceo",
    "chef",
    "chemist",
    "cleaner",
    "clerk",
    "coach",
    "consultant",
    "cook",
    "counselor",
    "counsellor",
    "cto",
    "dancer",
    "dentist",
    "designer",
    "developer",
    "doctor",
    "driver",
    "economist",
    "editor",
    "electrician",
    "engineer",
    "entrepreneur",
    "farmer",
    "firefighter",
    "founder",
    "hairdresser",
    "intern",
    "journalist",
    "judge",
    "lawyer",
    "lecturer",
    "librarian",
    "manager",
    "mathematician",
    "mechanic",
    "midwife",
    "musician",
    "nurse",
    "officer",
    "painter",
    "paramedic",
    "pharmacist",
    "photographer",
    "physician",
    "physicist",
    "physiotherapist",
    "pilot",
    "plumber",
    "policeman",
    "policewoman",
    "professor",
    "programmer",
    "psychologist",
    "receptionist",
    "researcher",
    "salesman",
    "saleswoman",
    "scientist",
    "secretary",
    "singer",
    "soldier",
    "student",
    "surgeon",
    "sysadmin",
    "teacher",
    "technician",
    "therapist",
    "translator",
    "tutor",
    "vet",
    "veterinarian",
    "waiter",
    "waitress",
    "writer",
];

/// Where a job phrase ends and the place of the work begins: "a nurse at Leeds General",
/// "an engineer for Airbus", "a nurse in Leeds".
const WORKPLACE_PREPOSITIONS: &[&str] = &[" at ", " for ", " in "];

/// The job phrase a clause states and what follows it: "I work as a nurse at Leeds
/// General" → ("a nurse", " at Leeds General"); also "I'm working as a cook", "I'm a
/// software engineer", "I am an ER nurse". The job ends where a place of work begins
/// ([`WORKPLACE_PREPOSITIONS`]); after "I'm a" its last word must be an occupation of
/// [`OCCUPATIONS`].
fn job_phrase(s: &str) -> Option<(&str, &str)> {
    // ASCII lowercasing keeps every byte offset valid in `s`.
    let lower = s.to_ascii_lowercase();
    let as_job = [
        "i work as ",
        "i'm working as ",
        "i am working as ",
        "i'm employed as ",
        "i am employed as ",
    ]
    .iter()
    .find(|p| lower.starts_with(**p));
    let (at, any_noun) = match as_job {
        Some(p) => (p.len(), true),
        // The article stays in the job: "a nurse".
        None => (
            ["i'm a ", "i'm an ", "i am a ", "i am an "]
                .iter()
                .find(|p| lower.starts_with(**p))
                .map(|p| p.len() - if p.ends_with("an ") { 3 } else { 2 })?,
            false,
        ),
    };
    let end = WORKPLACE_PREPOSITIONS
        .iter()
        .filter_map(|p| lower[at..].find(p))
        .min()
        .map_or(s.len(), |i| at + i);
    // "a teacher now": without the adverb.
    let job = bare_value(&s[at..end]);
    let head = job.rsplit(' ').next().unwrap_or("").to_ascii_lowercase();
    let known = OCCUPATIONS.contains(&head.as_str())
        || head
            .strip_suffix('s')
            .is_some_and(|one| OCCUPATIONS.contains(&one));
    (job.split_whitespace().count() <= 4 && (any_noun || known)).then(|| (job, &s[end..]))
}

/// The job a clause states ([`job_phrase`]) → (`user`, `job`, "a nurse").
fn stated_job(s: &str, statement: &str) -> Option<Fact> {
    let (job, _) = job_phrase(s)?;
    fact("user".into(), "job".into(), job, statement)
}

/// The employer a job clause names after its job: "I work as a nurse at Leeds General" →
/// (`user`, `employer`, "Leeds General"); `None` for a clause without a job or an employer,
/// and for a student's place of study.
fn stated_employer(clause: &str) -> Option<Fact> {
    let (job, rest) = job_phrase(strip_markers(clause))?;
    // "I'm a student at Oxford": a place of study, not an employer.
    if job.to_ascii_lowercase().ends_with("student") {
        return None;
    }
    let org = [" at ", " for "].iter().find_map(|p| {
        rest.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
            .then(|| &rest[p.len()..])
    })?;
    fact("user".into(), "employer".into(), org, clause)
}

/// How many things a count word says: "two" → 2, "3" → 3, "a" → 1.
fn count_word(word: &str) -> Option<u32> {
    const WORDS: &[&str] = &[
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    match word {
        "a" | "an" => Some(1),
        _ => WORDS
            .iter()
            .position(|w| *w == word)
            .map(|i| i as u32 + 1)
            .or_else(|| word.parse().ok()),
    }
}

/// Whether text is a list of names: capitalised words, joined by commas and "and" ("Sam and
/// Lily", "Tom, Kit and Pip").
fn is_name_list(text: &str) -> bool {
    let words: Vec<&str> = text.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    !words.is_empty()
        && words.iter().all(|w| {
            *w == "and"
                || (w.chars().next().is_some_and(char::is_uppercase)
                    && w.chars()
                        .all(|c| c.is_alphabetic() || c == '-' || c == '\''))
        })
}

/// Beings the user has, counted and named: "I have two kids, Sam and Lily", "I've got 3
/// cats named Tom, Kit and Pip" → (`user`, `kids`, "Sam and Lily"), the fact "My kids are Sam
/// and Lily" states; one being, "I have a son, Tom", → (`user.son`, `name`, "Tom"), as "I have
/// a son named Tom" reads ([`named_thing`]). The names must be capitalised words, so "I have
/// two kids, which keeps me busy" states nothing.
fn named_group(s: &str, statement: &str) -> Option<Fact> {
    // ASCII lowercasing keeps every byte offset valid in `s`.
    let lower = s.to_ascii_lowercase();
    let at = ["i have ", "i've got ", "we have ", "we've got "]
        .iter()
        .find(|p| lower.starts_with(**p))?
        .len();
    let rest = &lower[at..];
    let (count, rest) = rest.split_once(' ')?;
    let count = count_word(count)?;
    let (names_at, sep_len) = [
        ", named ",
        ", called ",
        " named ",
        " called ",
        ": ",
        ", ",
        " - ",
    ]
    .iter()
    .filter_map(|sep| rest.find(sep).map(|i| (i, sep.len())))
    .min_by_key(|&(i, len)| (i, std::cmp::Reverse(len)))?;
    let thing = &rest[..names_at];
    if thing.is_empty() || thing.split_whitespace().count() > 3 {
        return None;
    }
    let names_start = lower.len() - rest.len() + names_at + sep_len;
    let names = bare_value(&s[names_start..]);
    if !is_name_list(names) {
        return None;
    }
    let thing = key(thing);
    if count == 1 {
        fact(format!("user.{thing}"), "name".into(), names, statement)
    } else {
        fact("user".into(), thing, names, statement)
    }
}

/// Words that make a place a school: "I go to Elm Street School" names one, "I go to the
/// gym" does not.
const SCHOOL_WORDS: &[&str] = &[
    "school",
    "college",
    "university",
    "academy",
    "kindergarten",
    "nursery",
    "preschool",
    "institute",
    "lycée",
    "gymnasium",
];

/// Whether a place names a school by one of [`SCHOOL_WORDS`] (what "goes to" is about;
/// after "studies at" any place is one).
fn names_a_school(place: &str) -> bool {
    place
        .to_ascii_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| SCHOOL_WORDS.contains(&w))
}

/// Diets "I'm …" states ("I'm vegetarian", "I am a vegan") → (`user`, `diet`, …).
const DIETS: &[&str] = &[
    "vegetarian",
    "vegan",
    "pescatarian",
    "pescetarian",
    "gluten-free",
    "gluten free",
    "lactose intolerant",
    "lactose-intolerant",
    "keto",
    "halal",
    "kosher",
];

/// When or where the user was born: "I was born in 1990" → (`user`, `birth_year`,
/// `int:1990`), "I was born on March 3rd" → (`user`, `birthday`, "March 3rd"), "I was born in
/// Lyon" → (`user`, `hometown`, "Lyon"), as "I'm from Lyon" reads.
fn stated_birth(s: &str, statement: &str) -> Option<Fact> {
    let lower = s.to_ascii_lowercase();
    let rest = ["i was born ", "i were born "]
        .iter()
        .find_map(|p| lower.strip_prefix(p))?;
    let value = &s[s.len() - rest.len()..];
    let year = |v: &str| {
        let v = v.trim_end_matches(['.', '!']).trim();
        v.len() == 4 && v.chars().all(|c| c.is_ascii_digit())
    };
    let (facet, value) = if let Some(v) = rest.strip_prefix("on ") {
        ("birthday", &value[value.len() - v.len()..])
    } else if let Some(v) = rest.strip_prefix("in ") {
        let v = &value[value.len() - v.len()..];
        (if year(v) { "birth_year" } else { "hometown" }, v)
    } else {
        return None;
    };
    fact("user".into(), facet.into(), value, statement)
}

/// The age in what follows "I'm" / "she is": "36", "36 years old", "36 yo" → "36".
fn stated_age(tail: &str) -> Option<&str> {
    let tail = tail.trim_end_matches(['.', '!']).trim();
    let n = tail
        .strip_suffix(" years old")
        .or_else(|| tail.strip_suffix(" yo"))
        .unwrap_or(tail);
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit())).then_some(n)
}

/// Objects of "I like …" that name nothing to remember.
const NOT_LIKED: &[&str] = &[
    "it",
    "that",
    "this",
    "you",
    "them",
    "him",
    "her",
    "these",
    "those",
    "your answer",
    "that idea",
    "it a lot",
    "that a lot",
    "you too",
];

/// Capitalised words after "I'm" that are not a name ("I'm Fine", "I'm Back").
const NOT_NAMES: &[&str] = &[
    "fine", "ok", "okay", "good", "great", "sorry", "back", "here", "home", "done", "ready",
    "happy", "sad", "tired", "busy", "sure", "not", "so", "very", "just", "still", "also", "a",
    "an", "the", "in", "at", "on", "from", "going", "looking", "trying", "new",
];

/// The name in "I'm Ada" / "I am Ada Lovelace": one to three words, each capitalised and
/// none a word of [`NOT_NAMES`]; `None` for "I'm tired", "I'm Fine" or "I'm a nurse".
fn self_introduction(rest: &str) -> Option<&str> {
    let name = rest.trim().trim_end_matches(['.', '!']).trim();
    let words: Vec<&str> = name.split_whitespace().collect();
    let named = (1..=3).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .all(|c| c.is_alphabetic() || c == '-' || c == '\'')
                && !NOT_NAMES.contains(&w.to_ascii_lowercase().as_str())
        });
    named.then_some(name)
}

/// Where a sentence may join two statements, longest first (so ", and " wins over " and "
/// at the same place).
const JOINERS: &[&str] = &[", and ", ", but ", " and ", " but ", "; ", ", "];

/// The clauses of a sentence: it is cut at the first joiner whose rest states a fact by
/// itself ([`sentence_facts`]) or opens with a pronoun ([`CLAUSE_PRONOUNS`]: "… and she works
/// at Airbus"), and the rest is cut the same way. A sentence with no such joiner is one
/// clause.
pub fn clauses(sentence: &str) -> Vec<&str> {
    // ASCII lowercasing keeps every byte offset valid in `sentence`.
    let lower = sentence.to_ascii_lowercase();
    // A head of discourse markers only ("Actually, I like tea") stays with its clause: the
    // statement keeps the "actually" that says it replaces the old value.
    let markers_only = |head: &str| strip_markers(&format!("{head} ")).trim().is_empty();
    let cut = joiner_cuts(&lower)
        .filter(|&(i, end)| {
            !markers_only(&sentence[..i])
                && (opens_clause(&lower[end..])
                    || sentence_facts(&sentence[end..]).is_some()
                    || possessed_being(&sentence[end..]).is_some())
        })
        .min_by_key(|&(i, end)| (i, std::cmp::Reverse(end)));
    match cut {
        Some((i, end)) => {
            let mut out = vec![sentence[..i].trim()];
            out.extend(clauses(&sentence[end..]));
            out
        }
        None => vec![sentence.trim()],
    }
}

/// All facts to admit from a turn.
pub fn extract(text: &str) -> Vec<Fact> {
    // A "forget" turn states nothing; otherwise each sentence is skipped or read on its own
    // ("My name is Ada. What is the capital of France?" states the name).
    let lower = text.to_ascii_lowercase();
    if FORGET_MARKERS.iter().any(|m| lower.contains(m)) {
        return Vec::new();
    }
    // The thing or person the last fact was about: "she"/"he" in a later clause of the turn
    // ("My wife is called Julia and she works at Airbus") is about them.
    let mut last_being: Option<String> = None;
    let mut out = Vec::new();
    for sentence in sentences(text)
        .iter()
        .filter(|s| !skip_turn(strip_markers(s)))
    {
        for clause in clauses(sentence) {
            let found = clause_facts(clause, last_being.as_deref());
            if let Some(first) = found.first() {
                last_being = first
                    .subject
                    .starts_with("user.")
                    .then(|| first.subject.clone());
            }
            out.extend(found);
        }
    }
    out
}

/// The facts of one clause: about one of the user's beings ([`possessed_being`]), a plain
/// statement ([`sentence_facts`], with the employer a job names), or, when it speaks of
/// "she"/"he", about `last_being`, the being the turn named last.
fn clause_facts(clause: &str, last_being: Option<&str>) -> Vec<Fact> {
    if let Some(facts) = possessed_being(clause) {
        return facts;
    }
    let Some(fact) = sentence_facts(clause)
        .or_else(|| last_being.and_then(|subject| third_person_fact(clause, subject)))
    else {
        return Vec::new();
    };
    let employer = (fact.facet == "job" && fact.subject == "user")
        .then(|| stated_employer(clause))
        .flatten();
    std::iter::once(fact).chain(employer).collect()
}

/// A fact about `subject` (`user.wife`) in a clause that speaks of them as "she", "he" or
/// "they": "she works at Airbus" → (`user.wife`, `employer`, "Airbus"), "he lives in Rome",
/// "she is from Oslo", "he is 7 (years old)"; what may follow the pronoun is read by
/// [`third_person_predicate`].
fn third_person_fact(clause: &str, subject: &str) -> Option<Fact> {
    let lower = clause.to_ascii_lowercase();
    // "she's 41": the contraction's "'s" is "is".
    let (pronoun, is) = [
        ("she's ", true),
        ("he's ", true),
        ("she ", false),
        ("he ", false),
        ("they ", false),
    ]
    .into_iter()
    .find(|(p, _)| lower.starts_with(p))?;
    let rest = &clause[pronoun.len()..];
    let predicate = if is {
        format!("is {rest}")
    } else {
        rest.to_string()
    };
    third_person_predicate(&predicate, subject, clause)
}

/// What a third-person verb phrase says of `subject`: "works at|for X" → `employer`, "works
/// as a X" / "is a <occupation>" → `job`, "lives in X" → `city`, "is from X" → `hometown`,
/// "is 7 (years old)" → `age`, "is called|named X" → `name`, "likes|loves X" → `likes`,
/// "speaks X" → `languages`, "plays X" → `plays`, "is allergic to X" → `allergies`,
/// "drives a X" → `car`. `statement` is the clause, as stored.
fn third_person_predicate(predicate: &str, subject: &str, statement: &str) -> Option<Fact> {
    let lower = predicate.to_ascii_lowercase();
    for (verb, facet) in [
        ("works at ", "employer"),
        ("works for ", "employer"),
        ("work at ", "employer"),
        ("work for ", "employer"),
        ("works as ", "job"),
        ("lives in ", "city"),
        ("live in ", "city"),
        ("moved to ", "city"),
        ("is from ", "hometown"),
        ("are from ", "hometown"),
        ("from ", "hometown"),
        ("is called ", "name"),
        ("is named ", "name"),
        ("likes ", "likes"),
        ("loves ", "likes"),
        ("enjoys ", "likes"),
        ("speaks ", "languages"),
        ("plays ", "plays"),
        ("is allergic to ", "allergies"),
        ("drives ", "car"),
        ("goes to ", "school"),
        ("studies at ", "school"),
        ("can't eat ", "avoids"),
        ("doesn't eat ", "avoids"),
    ] {
        if let Some(value) = lower.strip_prefix(verb) {
            let value = &predicate[predicate.len() - value.len()..];
            if facet == "school" && verb == "goes to " && !names_a_school(value) {
                return None;
            }
            let value = match facet {
                // "works as a nurse at Leeds General": the job ends where its place begins.
                "job" => {
                    job_phrase(&format!("I work as {value}")).map(|(job, _)| job.to_string())?
                }
                _ => value.to_string(),
            };
            return fact(subject.into(), facet.into(), &value, statement);
        }
    }
    let tail = lower.strip_prefix("is ").unwrap_or(&lower);
    if let Some(n) = stated_age(tail) {
        return fact(subject.into(), "age".into(), n, statement);
    }
    // "is a doctor": an occupation of [`OCCUPATIONS`].
    let said = format!("I'm {}", &predicate[predicate.len() - tail.len()..]);
    let (job, _) = job_phrase(&said)?;
    fact(subject.into(), "job".into(), job, statement)
}

/// Facts about one of the user's beings ([`NAMED_BEINGS`]), said as "my <being> [<Name>]
/// <verb phrase>": "My brother lives in Paris" → (`user.brother`, `city`, "Paris"); "My wife
/// Julia works at Airbus" → (`user.wife`, `name`, "Julia") and (`user.wife`, `employer`,
/// "Airbus"); "My son Tom is 7"; "My sister is a doctor" → (`user.sister`, `job`, "a
/// doctor"). The verb phrase is read by [`third_person_predicate`]; `None` when it says
/// nothing it reads (then "my X is Y" is read as a facet of the user's, [`sentence_facts`]).
fn possessed_being(clause: &str) -> Option<Vec<Fact>> {
    let statement = clause.trim();
    let s = strip_markers(statement);
    let lower = s.to_ascii_lowercase();
    lower.strip_prefix("my ")?;
    let words: Vec<&str> = s[3..].split(' ').filter(|w| !w.is_empty()).collect();
    // The being is one or two words ("sister", "little sister", "best friend").
    let span = (1..=2).find(|&n| {
        words
            .get(n - 1)
            .is_some_and(|w| NAMED_BEINGS.contains(&w.to_ascii_lowercase().as_str()))
    })?;
    let being = key(&words[..span].join(" "));
    let subject = format!("user.{being}");
    // A name right after the being: capitalised words, none a verb of the phrase.
    let named: Vec<&str> = words[span..]
        .iter()
        .take(2)
        .take_while(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .all(|c| c.is_alphabetic() || c == '-' || c == '\'')
        })
        .copied()
        .collect();
    let predicate = words[span + named.len()..].join(" ");
    let said = third_person_predicate(&predicate, &subject, statement)?;
    let name = (!named.is_empty())
        .then(|| fact(subject.clone(), "name".into(), &named.join(" "), statement))
        .flatten();
    Some(name.into_iter().chain(std::iter::once(said)).collect())
}

struct CaptureFacts;

impl Guest for CaptureFacts {
    fn capture(text: String) -> Vec<Fact> {
        extract(&text)
    }
}

engram_plugin_sdk::capture::export_capture!(CaptureFacts);

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String, String) {
        let facts = extract(text);
        assert_eq!(facts.len(), 1, "{text}: {facts:?}");
        let f = &facts[0];
        (f.subject.clone(), f.facet.clone(), f.value.clone())
    }

    #[test]
    fn discourse_markers_do_not_hide_a_statement() {
        let plain = one("My server's IP is 10.0.0.7");
        assert_eq!(
            plain,
            ("user.server".into(), "ip".into(), "ip:10.0.0.7".into())
        );
        for text in [
            "Actually my server's IP is 10.0.0.7",
            "Actually, my server's IP is 10.0.0.7.",
            "Oh and by the way, my server's IP is 10.0.0.7",
            "Update: my server's IP is now 10.0.0.7",
            "The IP of my server is 10.0.0.7",
        ] {
            assert_eq!(one(text), plain, "{text}");
        }
        assert_eq!(
            extract("Actually my server's IP is 10.0.0.9")[0].statement,
            "Actually my server's IP is 10.0.0.9"
        );
    }

    #[test]
    fn additive_adverbs_leave_the_value() {
        assert_eq!(one("My hobbies are also hiking.").2, "hiking");
        assert_eq!(one("My hobbies are hiking too").2, "hiking");
    }

    #[test]
    fn joined_statements_are_read_clause_by_clause() {
        let facts = |t: &str| {
            extract(t)
                .into_iter()
                .map(|f| (f.facet, f.value, f.statement))
                .collect::<Vec<_>>()
        };
        let ada = vec![
            ("name".into(), "Ada".into(), "My name is Ada".into()),
            ("city".into(), "Lyon".into(), "I live in Lyon".into()),
        ];
        assert_eq!(facts("Hi! My name is Ada and I live in Lyon."), ada);
        assert_eq!(facts("My name is Ada, and I live in Lyon"), ada);
        assert_eq!(facts("My name is Ada; I live in Lyon"), ada);
        assert_eq!(
            facts("Hi, my name is Ada"),
            vec![("name".into(), "Ada".into(), "Hi, my name is Ada".into())]
        );
        // The marker that says a value replaces the old one stays in the statement.
        assert_eq!(
            facts("Actually, I like tea"),
            vec![("likes".into(), "tea".into(), "Actually, I like tea".into())]
        );
        assert_eq!(
            facts("I work at Acme, my email is ada@example.org and I am 36 years old"),
            vec![
                ("employer".into(), "Acme".into(), "I work at Acme".into()),
                (
                    "email".into(),
                    "email:ada@example.org".into(),
                    "my email is ada@example.org".into()
                ),
                ("age".into(), "int:36".into(), "I am 36 years old".into()),
            ]
        );
        let dog = ("user.dog".into(), "name".into(), "Rex".into());
        for text in [
            "I have a dog named Rex",
            "I've got a dog called Rex.",
            "My dog is named Rex",
        ] {
            assert_eq!(one(text), dog, "{text}");
        }
        assert_eq!(
            facts("I have a cat called Tom and my name's Ada"),
            vec![
                (
                    "name".into(),
                    "Tom".into(),
                    "I have a cat called Tom".into()
                ),
                ("name".into(), "Ada".into(), "my name's Ada".into()),
            ]
        );
        assert_eq!(extract("I have a cat called Tom")[0].subject, "user.cat");
        assert_eq!(one("My name's Ada").1, "name");
        assert_eq!(
            one("My favorite band is called Muse"),
            ("user".into(), "favorite_band".into(), "Muse".into())
        );
        assert_eq!(
            one("My little sister is called Mia").0,
            "user.little_sister"
        );
        // "she"/"he" in a later clause is the being the turn just named.
        let wife: Vec<(String, String, String)> = extract(
            "My wife is called Julia and she works at Airbus. She's 41 and she lives in Toulouse.",
        )
        .into_iter()
        .map(|f| (f.subject, f.facet, f.value))
        .collect();
        assert_eq!(
            wife,
            [
                ("user.wife", "name", "Julia"),
                ("user.wife", "employer", "Airbus"),
                ("user.wife", "age", "int:41"),
                ("user.wife", "city", "Toulouse"),
            ]
            .map(|(s, f, v)| (s.to_string(), f.to_string(), v.to_string()))
        );
        assert!(
            extract("She works at Airbus").is_empty(),
            "nobody named before"
        );
        // What the user likes.
        assert_eq!(one("I love hiking").1, "likes");
        assert_eq!(one("I also like sushi").2, "sushi");
        assert!(extract("I like it").is_empty() && extract("I love you!").is_empty());
        // Introductions and bare ages.
        assert_eq!(
            facts("Hello, I'm Ada. I'm 36 and I live in Lyon."),
            vec![
                ("name".into(), "Ada".into(), "I'm Ada".into()),
                ("age".into(), "int:36".into(), "I'm 36".into()),
                ("city".into(), "Lyon".into(), "I live in Lyon".into()),
            ]
        );
        assert_eq!(one("I am Ada Lovelace").2, "Ada Lovelace");
        for text in [
            "I'm tired",
            "I'm Fine",
            "I'm a nurse",
            "I am from Lyon and happy",
        ] {
            assert!(extract(text).iter().all(|f| f.facet != "name"), "{text}");
        }
        // When it became true is not part of the value.
        assert_eq!(one("I moved to Paris last year.").2, "Paris");
        assert_eq!(one("I work at Acme since 2019").2, "Acme");
        assert_eq!(one("I moved to Rome 3 years ago").2, "Rome");
        assert_eq!(one("My favorite year is 2019").2, "int:2019");
        // A clause the value runs into ends it.
        assert_eq!(one("I live in Lyon and I love it").2, "Lyon");
        assert_eq!(one("My dog's name is Rex and he is sick").2, "Rex");
        assert_eq!(one("My car is a Golf, it's blue").2, "a Golf");
        // A value that only contains a joiner stays whole.
        assert_eq!(
            one("My favorite duo is Simon and Garfunkel").2,
            "Simon and Garfunkel"
        );
        assert_eq!(one("My cats are Tom, Kit and Pip").2, "Tom, Kit and Pip");
        assert_eq!(
            one("My favorite foods are pizza and my mom's lasagna").2,
            "pizza and my mom's lasagna"
        );
    }

    #[test]
    fn jobs_and_named_groups_are_read() {
        let kv = |t: &str| {
            extract(t)
                .into_iter()
                .map(|f| (f.subject, f.facet, f.value))
                .collect::<Vec<_>>()
        };
        let f = |s: &str, facet: &str, v: &str| (s.to_string(), facet.to_string(), v.to_string());
        assert_eq!(
            kv("Hi! I'm Maya and I work as a nurse in Leeds."),
            vec![f("user", "name", "Maya"), f("user", "job", "a nurse")]
        );
        assert_eq!(
            kv("I work as a nurse at Leeds General"),
            vec![
                f("user", "job", "a nurse"),
                f("user", "employer", "Leeds General")
            ]
        );
        assert_eq!(
            kv("I'm a software engineer."),
            vec![f("user", "job", "a software engineer")]
        );
        assert_eq!(
            kv("I am an ER nurse"),
            vec![f("user", "job", "an ER nurse")]
        );
        assert_eq!(
            kv("I'm working as a cook"),
            vec![f("user", "job", "a cook")]
        );
        assert_eq!(
            kv("Actually, I'm a teacher now."),
            vec![f("user", "job", "a teacher")]
        );
        assert_eq!(
            kv("I'm a student at Oxford"),
            vec![f("user", "job", "a student")]
        );
        for text in [
            "I'm a bit tired",
            "I'm a big fan of jazz",
            "I'm a mother of two",
        ] {
            assert!(kv(text).is_empty(), "{text}: {:?}", kv(text));
        }
        assert_eq!(
            kv("I have two kids, Sam and Lily."),
            vec![f("user", "kids", "Sam and Lily")]
        );
        assert_eq!(
            kv("I've got 3 cats named Tom, Kit and Pip"),
            vec![f("user", "cats", "Tom, Kit and Pip")]
        );
        assert_eq!(
            kv("We have two dogs: Rex and Fido"),
            vec![f("user", "dogs", "Rex and Fido")]
        );
        assert_eq!(kv("I have a son, Tom"), vec![f("user.son", "name", "Tom")]);
        for text in [
            "I have two kids, which keeps me busy",
            "I have a question, really",
            "I have two kids",
        ] {
            assert!(kv(text).is_empty(), "{text}: {:?}", kv(text));
        }
        // A named group may share its sentence with another statement.
        assert_eq!(
            kv("I have two kids, Sam and Lily, and I live in York"),
            vec![f("user", "kids", "Sam and Lily"), f("user", "city", "York")]
        );
    }

    #[test]
    fn everyday_first_person_statements_are_read() {
        let kv = |t: &str| {
            extract(t)
                .into_iter()
                .map(|f| (f.facet, f.value))
                .collect::<Vec<_>>()
        };
        let f = |facet: &str, v: &str| vec![(facet.to_string(), v.to_string())];
        assert_eq!(kv("I'm allergic to peanuts."), f("allergies", "peanuts"));
        assert_eq!(kv("I drive a Tesla."), f("car", "a Tesla"));
        assert_eq!(
            kv("I speak French and Spanish."),
            f("languages", "French and Spanish")
        );
        assert_eq!(
            kv("I prefer tea over coffee."),
            f("prefers", "tea over coffee")
        );
        assert_eq!(kv("I play the guitar"), f("plays", "the guitar"));
        assert_eq!(kv("I hate mornings"), f("dislikes", "mornings"));
        assert_eq!(kv("I don't like olives"), f("dislikes", "olives"));
        assert_eq!(kv("I'm vegetarian."), f("diet", "vegetarian"));
        assert_eq!(kv("I also speak German"), f("languages", "German"));
        assert_eq!(kv("I now live in Rome"), f("city", "Rome"));
        assert_eq!(kv("I also like sushi"), f("likes", "sushi"));
        assert_eq!(kv("I'm also allergic to cats"), f("allergies", "cats"));
        assert_eq!(kv("I'm originally from Madrid."), f("hometown", "Madrid"));
        assert_eq!(
            kv("I've been living in Oslo since 2020."),
            f("city", "Oslo")
        );
        assert_eq!(kv("I've lived in Oslo for 5 years"), f("city", "Oslo"));
        assert_eq!(kv("I can't eat gluten."), f("avoids", "gluten"));
        assert_eq!(kv("I don't eat meat either"), f("avoids", "meat"));
        assert_eq!(
            kv("I go to Leeds University"),
            f("school", "Leeds University")
        );
        assert_eq!(kv("I study at MIT"), f("school", "MIT"));
        assert!(kv("I go to the gym").is_empty());
        assert_eq!(
            extract("I also speak German")[0].statement,
            "I also speak German"
        );
        assert_eq!(kv("I am a vegan"), f("diet", "vegan"));
        assert_eq!(kv("I was born in 1990."), f("birth_year", "int:1990"));
        assert_eq!(kv("I was born on March 3rd"), f("birthday", "March 3rd"));
        assert_eq!(kv("I was born in Lyon"), f("hometown", "Lyon"));
        for text in [
            "I drive to work",
            "I drive a lot",
            "I speak slowly",
            "I hate it",
            "I play it safe",
            "I was born yesterday",
        ] {
            assert!(kv(text).is_empty(), "{text}: {:?}", kv(text));
        }
    }

    #[test]
    fn the_users_beings_are_read_with_their_names() {
        let kv = |t: &str| {
            extract(t)
                .into_iter()
                .map(|f| (f.subject, f.facet, f.value))
                .collect::<Vec<_>>()
        };
        let f = |s: &str, facet: &str, v: &str| (s.to_string(), facet.to_string(), v.to_string());
        assert_eq!(
            kv("My brother lives in Paris."),
            vec![f("user.brother", "city", "Paris")]
        );
        assert_eq!(
            kv("My wife Julia works at Airbus."),
            vec![
                f("user.wife", "name", "Julia"),
                f("user.wife", "employer", "Airbus")
            ]
        );
        assert_eq!(
            kv("My son Tom is 7 and he plays the piano."),
            vec![
                f("user.son", "name", "Tom"),
                f("user.son", "age", "int:7"),
                f("user.son", "plays", "the piano")
            ]
        );
        assert_eq!(
            kv("My son goes to Elm Street School."),
            vec![f("user.son", "school", "Elm Street School")]
        );
        assert!(kv("My wife goes to the gym").is_empty());
        assert_eq!(
            kv("My sister is a doctor."),
            vec![f("user.sister", "job", "a doctor")]
        );
        assert_eq!(
            kv("My best friend Ana works as a nurse at St Mary's"),
            vec![
                f("user.best_friend", "name", "Ana"),
                f("user.best_friend", "job", "a nurse")
            ]
        );
        assert_eq!(
            kv("I live in Lyon and my mother lives in Nice"),
            vec![f("user", "city", "Lyon"), f("user.mother", "city", "Nice")]
        );
        // What the verb phrase does not read stays the user's own facet, as before.
        assert_eq!(kv("My son is Tom"), vec![f("user", "son", "Tom")]);
        assert_eq!(
            kv("My boss is an idiot"),
            vec![f("user", "boss", "an idiot")]
        );
    }

    #[test]
    fn text_whose_lower_case_changes_length_reads_without_panicking() {
        // "İ" is two bytes, its lower case three: offsets found in a lowercased copy must
        // not be used to slice the original.
        for text in [
            "My İstanbul flat's number is 5",
            "My name is İlker and I live in İzmir",
            "I'm İlker. My wife İpek works at Airbus",
            "I have two kids, İpek and Ali",
            "I work as a İnşaat engineer at ŞİŞECAM",
            "My İİİ is İİİ",
            "Actually, İ like tea",
            "I was born in İzmir",
            "The İP of my server is 10.0.0.1",
            "ẞ ẞ ẞ my ẞ's ẞ is ẞ",
        ] {
            let _ = extract(text);
        }
    }

    #[test]
    fn questions_requests_and_forgets_stay_skipped() {
        assert!(extract("Actually, what is my server's IP?").is_empty());
        // The statement of a turn that also asks something is read.
        assert_eq!(
            one("My name is Ada. What is the capital of France?"),
            ("user".into(), "name".into(), "Ada".into())
        );
        assert!(extract("Forget my IP. It is 10.0.0.7").is_empty());
        assert!(extract("Actually please forget my server's IP").is_empty());
        assert!(extract("So tell me my server's IP").is_empty());
        assert!(extract("Now is the time").is_empty());
    }
}
