//! The memory state the model reads: the recalled facts a turn keeps ([`focus_state`]), each
//! rendered as one plain sentence from its κ and value ([`render_fact`]), in one line with
//! the instruction to answer with them ([`state_line`]).

use super::gist::{describe_kappa, possessive};
use super::query::is_plural;

/// One fact of the memory state, before [`focus_state`] orders and cuts the list.
#[derive(Debug, Clone, PartialEq)]
pub struct StateFact {
    /// Its entry in the turn's `recalled` report.
    pub index: usize,
    /// The question names this cell's κ (its facet, and its subject or owner).
    pub names_kappa: bool,
    /// The question names this cell's facet in the facet's own words ("What's my job?" for
    /// `job`), not only by a cue word (its "job" also cues `employer`).
    pub facet_named: bool,
    /// The judge's confidence.
    pub confidence: f32,
    /// The sentence the model reads.
    pub rendered: String,
    /// The cell's value as stored (what value anchoring keeps the answer to).
    pub value: String,
    /// The first words of an answer given from this fact, in the second person
    /// ([`answer_opening`]); `None` for a cell that is not the user's own.
    pub opening: Option<String>,
    /// The fact said to the user ([`told_to_user`]: "you live in Lyon"); `None` for a cell
    /// that is not the user's.
    pub told: Option<String>,
    /// For a yes/no question, whether its answer is yes ([`super::query::yes_no_verdict`]);
    /// `None` for any other question, or when the value does not tell.
    pub verdict: Option<bool>,
}

/// The facts the model sees, most relevant first: when the question names a κ only the
/// cells of that κ are kept (a small model copies the first fact of its memory state and is
/// misled by every other one), those whose facet it names in the facet's own words first;
/// otherwise the judge's picks by confidence.
pub fn focus_state(mut state: Vec<StateFact>) -> Vec<StateFact> {
    if state.iter().any(|f| f.names_kappa) {
        state.retain(|f| f.names_kappa);
    }
    state.sort_by(|a, b| {
        b.facet_named
            .cmp(&a.facet_named)
            .then(b.confidence.total_cmp(&a.confidence))
    });
    state
}

/// The memory-state line of the prompt: the facts as plain sentences, then the instruction
/// to answer with them when asked (worded so it also fits a turn that states something).
/// Measured with the default 135M model, this line placed after the user's message is
/// answered from on 28/28 horizon questions at N = 32 and 56/56 at N = 64 (the former
/// bulleted list of stored statements before the question: 17/28), and on 8/8 plain
/// questions such as "What are my hobbies?" where a bare "Answer with it." got 6/8.
pub fn state_line(state: &[StateFact]) -> Option<String> {
    state_body(state).map(|body| memory_line(&body, state.len()))
}

/// The facts of the state as the sentences the model reads, one after another; `None` for
/// an empty state.
fn state_body(state: &[StateFact]) -> Option<String> {
    let facts: Vec<&str> = state.iter().map(|f| f.rendered.as_str()).collect();
    (!facts.is_empty()).then(|| facts.join(" "))
}

/// How an instruction names `count` facts: "it" or "them".
fn pronoun(count: usize) -> &'static str {
    if count == 1 {
        "it"
    } else {
        "them"
    }
}

/// The memory-state line of a question whose reply the host opens ("Your server's"): the
/// facts, then the short [`OPENED_INSTRUCTION`]. The opening already sets the answer on the
/// fact, so the conditional instruction of [`state_line`] is not needed; measured with the
/// default 135M model on the horizon questions in no-replay mode (`engram bench horizon
/// --quick`), answer recall was 32/32 at N = 32 and 56/56 at N = 64 with this line, as with
/// [`state_line`], and 55/56 at N = 64 with the bare facts; it costs 7 prompt tokens less a
/// question than [`state_line`].
pub fn opened_state_line(state: &[StateFact]) -> Option<String> {
    let object = pronoun(state.len());
    state_body(state).map(|body| format!("From memory: {body} {OPENED_INSTRUCTION} {object}."))
}

/// The two words before `value` in a rendered fact ("hint is" in "The user's cat's password
/// hint is amber-529."): an answer that says them goes on with the value (value anchoring's
/// lead, `engram_engine::anchor`). `None` when the sentence does not hold the value after two
/// words.
pub fn lead_in(rendered: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let at = rendered.rfind(value)?;
    let before = &rendered[..at];
    if !before.ends_with(' ') {
        return None;
    }
    let words: Vec<&str> = before.split_whitespace().collect();
    let lead = words.get(words.len().checked_sub(2)?..)?;
    Some(lead.join(" "))
}

/// The opening words of [`opened_state_line`]'s instruction.
pub const OPENED_INSTRUCTION: &str = "Answer with";

/// A "From memory:" line of the memory block: `body` (what memory holds, `count` facts),
/// then the instruction to answer with it when asked.
pub fn memory_line(body: &str, count: usize) -> String {
    let object = pronoun(count);
    format!("From memory: {body} {STATE_INSTRUCTION} asks about {object}, answer with {object}.")
}

/// The opening words of [`state_line`]'s instruction: short, so that an answer cut by the
/// token budget in the middle of a copied instruction does not show its start either.
pub const STATE_INSTRUCTION: &str = "If the user";

/// Where the answer stops if the model starts to copy one of the host's instructions
/// (`instructions`: their opening words), with the space or line break before it, so the
/// user never reads the prompt's scaffolding. The default 135M model did so after 4 of 28
/// horizon answers at N = 32 ("… code is 40187. if the user asks about it, answer with it").
pub fn echo_stops(instructions: &[&str]) -> Vec<String> {
    instructions
        .iter()
        .flat_map(|start| [format!(" {start}"), format!("\n{start}"), start.to_string()])
        .collect()
}

/// A cell as one sentence in the third person, built from its κ and value rather than the
/// user's wording ("By the way, my server's IP is …" → "The user's server's ip is
/// 10.0.0.7."), so discourse markers and first-person forms do not reach the model. Cells
/// of other subjects keep their stored statement.
pub fn render_fact(content: &engram_memory::CellContent) -> String {
    let facet = content.facet.replace('_', " ");
    let value = display_value(content.value.raw.trim());
    let owner = match content.subject.strip_prefix("user.") {
        Some(owner) => format!("The user's {}", possessive(owner)),
        None if content.subject == "user" => "The user's".to_string(),
        None => return content.text.clone(),
    };
    if value.is_empty() || facet.trim().is_empty() {
        return content.text.clone();
    }
    let end = if value.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    if let Some((third, _, tail)) = verb_facet(&content.facet) {
        let who = match content.subject.strip_prefix("user.") {
            Some(owner) => format!("The user's {}", owner.replace('_', " ")),
            None => "The user".to_string(),
        };
        return format!("{who} {third} {value}{tail}{end}");
    }
    let verb = copula(&content.facet);
    format!("{owner} {facet} {verb} {value}{end}")
}

/// "are" for a facet whose last word is plural ("hobbies"), else "is".
fn copula(facet: &str) -> &'static str {
    let facet = facet.replace('_', " ");
    let last = facet.split_whitespace().last().unwrap_or_default();
    if is_plural(last) {
        "are"
    } else {
        "is"
    }
}

/// The first words of an answer to the user from one of their own facts, in the second
/// person: "Your server's" for `user.server`, "You live in" for the user's city, "Your
/// favorite color" for another facet of the user (a bare "Your" was continued with the
/// wrong facet, copied from an earlier answer). [`render_fact`] speaks of "the user" (the memory block is read
/// by the model), and without an opening the default 135M model copied that into every
/// answer ("The user's laptop's color is teal." to "What color is my laptop?", 20/20 probes);
/// opened this way it goes on with the facet and the value. `None` for other subjects.
pub fn answer_opening(content: &engram_memory::CellContent) -> Option<String> {
    let verb = verb_facet(&content.facet);
    if let Some(owner) = content.subject.strip_prefix("user.") {
        let owner = owner.replace('_', " ");
        return Some(match verb {
            Some((third, _, _)) => format!("Your {owner} {third}"),
            None => format!("Your {}", possessive(&owner)),
        });
    }
    if content.subject != "user" {
        return None;
    }
    Some(match verb {
        Some((_, second, _)) => format!("You {second}"),
        None => format!("Your {}", content.facet.replace('_', " ")),
    })
}

/// How a sentence says a facet the capture plugin reads from a verb ("I live in Lisbon" →
/// `city`): the verb after a third-person subject ("lives in"), after "you" ("live in"),
/// and what follows the value (" years old" for the age); `None` for a facet said as "…'s
/// <facet> is <value>". Said the way the user said them ("The user lives in Lisbon." rather
/// than "The user's city is Lisbon.", which the default 135M model answered with another
/// city).
fn verb_facet(facet: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match facet {
        "city" => Some(("lives in", "live in", "")),
        "hometown" => Some(("is from", "are from", "")),
        "employer" => Some(("works at", "work at", "")),
        "age" => Some(("is", "are", " years old")),
        "likes" => Some(("likes", "like", "")),
        "dislikes" => Some(("dislikes", "dislike", "")),
        "prefers" => Some(("prefers", "prefer", "")),
        "plays" => Some(("plays", "play", "")),
        "allergies" => Some(("is allergic to", "are allergic to", "")),
        "car" => Some(("drives", "drive", "")),
        "languages" => Some(("speaks", "speak", "")),
        "birth_year" => Some(("was born in", "were born in", "")),
        "avoids" => Some(("doesn't eat", "don't eat", "")),
        _ => None,
    }
}

/// One of the user's own facts said to the user, without the full stop: "you live in
/// Lyon", "your dog's name is Rex", "your hobbies are chess and hiking"; `None` for a cell
/// that is not the user's.
pub fn told_to_user(content: &engram_memory::CellContent) -> Option<String> {
    let owner = content.subject.strip_prefix("user.");
    if owner.is_none() && content.subject != "user" {
        return None;
    }
    let value = display_value(&content.value.raw);
    Some(match (verb_facet(&content.facet), owner) {
        (Some((third, _, tail)), Some(owner)) => {
            format!("your {} {third} {value}{tail}", owner.replace('_', " "))
        }
        (Some((_, second, tail)), None) => format!("you {second} {value}{tail}"),
        (None, _) => {
            let kappa = describe_kappa(&content.subject, &content.facet);
            format!("{kappa} {} {value}", copula(&content.facet))
        }
    })
}

/// A stored value as the model reads it: without the type prefix a capture plugin wrote
/// and an older store kept as part of the text (`int:2006` → `2006`).
pub fn display_value(raw: &str) -> &str {
    const PREFIXES: &[&str] = &[
        "int", "num", "number", "text", "ip", "email", "url", "date", "phone", "bool",
    ];
    match raw.split_once(':') {
        Some((prefix, rest)) if PREFIXES.contains(&prefix) && !rest.trim().is_empty() => {
            rest.trim()
        }
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engram_memory::Source;

    fn content(subject: &str, facet: &str, value: &str, text: &str) -> engram_memory::CellContent {
        engram_memory::CellContent {
            subject: subject.into(),
            facet: facet.into(),
            value: engram_memory::TypedValue::parse(value),
            text: text.into(),
            source: Source::default(),
            valid_from: 0,
            embedding: Vec::new(),
        }
    }

    #[test]
    fn stored_values_lose_their_type_prefix() {
        assert_eq!(display_value("int:2006"), "2006");
        assert_eq!(display_value("https://example.org"), "https://example.org");
    }

    #[test]
    fn the_users_own_capture_facets_read_as_the_user_said_them() {
        let fact = |facet: &str, value: &str| content("user", facet, value, "");
        assert_eq!(
            render_fact(&fact("city", "Lisbon")),
            "The user lives in Lisbon."
        );
        assert_eq!(
            render_fact(&fact("age", "int:34")),
            "The user is 34 years old."
        );
        assert_eq!(
            render_fact(&fact("favourite_colour", "teal")),
            "The user's favourite colour is teal."
        );
    }

    #[test]
    fn the_users_facts_are_told_to_them_in_the_second_person() {
        let told = |subject: &str, facet: &str, value: &str| {
            told_to_user(&content(subject, facet, value, ""))
        };
        assert_eq!(
            told("user", "city", "Lyon").as_deref(),
            Some("you live in Lyon")
        );
        assert_eq!(
            told("user", "age", "int:36").as_deref(),
            Some("you are 36 years old")
        );
        assert_eq!(
            told("user.dog", "name", "Rex").as_deref(),
            Some("your dog's name is Rex")
        );
        assert_eq!(
            told("user", "hobbies", "chess and hiking").as_deref(),
            Some("your hobbies are chess and hiking")
        );
        assert_eq!(told("engram", "endpoints", "x"), None);
        assert_eq!(
            told("user.wife", "employer", "Airbus").as_deref(),
            Some("your wife works at Airbus")
        );
        let wife = content("user.wife", "employer", "Airbus", "");
        assert_eq!(render_fact(&wife), "The user's wife works at Airbus.");
        assert_eq!(answer_opening(&wife).as_deref(), Some("Your wife works at"));
    }

    #[test]
    fn facts_render_from_their_kappa_and_value() {
        let ip = content(
            "user.build_box",
            "ip",
            "ip:10.0.0.9",
            "By the way, my build box's IP is 10.0.0.9",
        );
        assert_eq!(render_fact(&ip), "The user's build box's ip is 10.0.0.9.");
        let port = content(
            "user.laptop",
            "port",
            "int:2006",
            "The port of my laptop is 2006",
        );
        assert_eq!(render_fact(&port), "The user's laptop's port is 2006.");
        let hobbies = content(
            "user",
            "hobbies",
            "chess and hiking",
            "My hobbies are chess and hiking",
        );
        assert_eq!(
            render_fact(&hobbies),
            "The user's hobbies are chess and hiking."
        );
        let alias = content(
            "user.gym",
            "alias",
            "Juniper18",
            "The alias of my gym is Juniper18",
        );
        assert_eq!(render_fact(&alias), "The user's gym's alias is Juniper18.");
        let own = content("engram", "endpoints", "x", "I serve /v1/chat.");
        assert_eq!(render_fact(&own), "I serve /v1/chat.");
    }

    #[test]
    fn answers_from_the_users_facts_open_in_the_second_person() {
        let opening =
            |subject: &str, facet: &str| answer_opening(&content(subject, facet, "x", "My x is x"));
        assert_eq!(
            opening("user.server", "ip").as_deref(),
            Some("Your server's")
        );
        assert_eq!(
            opening("user.work_laptop", "color").as_deref(),
            Some("Your work laptop's")
        );
        assert_eq!(
            opening("user", "favorite_color").as_deref(),
            Some("Your favorite color")
        );
        assert_eq!(opening("user", "city").as_deref(), Some("You live in"));
        assert_eq!(opening("user", "age").as_deref(), Some("You are"));
        assert_eq!(opening("engram", "endpoints"), None);
    }

    #[test]
    fn the_state_keeps_the_named_kappa_first_and_alone() {
        let fact = |index, names_kappa, confidence: f32| StateFact {
            index,
            names_kappa,
            facet_named: false,
            confidence,
            rendered: format!("fact {index}"),
            value: String::new(),
            opening: None,
            told: None,
            verdict: None,
        };
        let kept = focus_state(vec![
            fact(0, false, 0.9),
            fact(1, true, 0.2),
            fact(2, true, 0.7),
        ]);
        assert_eq!(kept.iter().map(|f| f.index).collect::<Vec<_>>(), [2, 1]);
        // "What's my job?": the `job` cell before the `employer` one its "job" cues.
        let job = StateFact {
            facet_named: true,
            ..fact(3, true, 0.1)
        };
        let kept = focus_state(vec![fact(2, true, 0.7), job]);
        assert_eq!(kept.iter().map(|f| f.index).collect::<Vec<_>>(), [3, 2]);
        let judged = focus_state(vec![fact(0, false, 0.6), fact(1, false, 0.8)]);
        assert_eq!(judged.iter().map(|f| f.index).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(
            state_line(&judged[..1]).unwrap(),
            "From memory: fact 1 If the user asks about it, answer with it."
        );
        assert_eq!(
            state_line(&judged).unwrap(),
            "From memory: fact 1 fact 0 If the user asks about them, answer with them."
        );
        assert!(state_line(&[]).is_none());
        assert_eq!(
            opened_state_line(&judged[..1]).unwrap(),
            "From memory: fact 1 Answer with it."
        );
        assert_eq!(
            opened_state_line(&judged).unwrap(),
            "From memory: fact 1 fact 0 Answer with them."
        );
        assert!(opened_state_line(&[]).is_none());
    }

    #[test]
    fn a_lead_is_the_two_words_before_the_value() {
        assert_eq!(
            lead_in("The user's cat's password hint is amber-529.", "amber-529").as_deref(),
            Some("hint is")
        );
        assert_eq!(
            lead_in("The user lives in Lisbon.", "Lisbon").as_deref(),
            Some("lives in")
        );
        assert_eq!(lead_in("Lisbon is home.", "Lisbon"), None);
        assert_eq!(lead_in("The code is x40187.", "40187"), None);
        assert_eq!(lead_in("The code is 40187.", ""), None);
    }

    #[test]
    fn echo_stops_cut_a_copied_instruction_with_the_space_before_it() {
        let line = state_line(&[StateFact {
            index: 0,
            names_kappa: true,
            facet_named: true,
            confidence: 1.0,
            rendered: "The user's cat's code is 40187.".into(),
            value: "40187".into(),
            opening: None,
            told: None,
            verdict: None,
        }])
        .unwrap();
        let stops = echo_stops(&[STATE_INSTRUCTION]);
        // What the model copied: the stop that begins first (with its space) cuts it.
        let copied = format!(
            "The code is 40187. {}",
            &line[line.find(STATE_INSTRUCTION).unwrap()..]
        );
        let cut = stops
            .iter()
            .filter_map(|s| copied.find(s.as_str()))
            .min()
            .unwrap();
        assert_eq!(&copied[..cut], "The code is 40187.");
        assert!(stops.iter().all(|s| s.trim_start() == STATE_INSTRUCTION));
        assert!(echo_stops(&[]).is_empty());
    }
}
