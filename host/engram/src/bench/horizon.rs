//! `engram bench horizon`: how far memory carries a conversation without replaying it.
//!
//! The real server (`engram serve`, this binary, as a child process) is driven in no-replay
//! mode: each turn the model sees only the system prompt, the latest user text and the
//! rendered memory state. For each N (8, 16, 32, 64, 256, 1024 by default), one conversation:
//!
//! 1. **plant** N facts, one per turn, through the real capture path; facts are generated from
//!    templates (64 owners × 16 properties, typed values) in many surface forms ("My server's
//!    IP is …", "The IP of my server is …", "By the way, …", "FYI …");
//! 2. **update** every 8th fact with a new value ("Actually, …", "Update: … is now …") and
//!    **forget** every 8th fact (offset 4);
//! 3. **ask** about each fact with a paraphrased question (six question forms).
//!
//! Every turn sends the whole transcript so far (with the assistant's real replies) plus the
//! new text, as a client replaying the conversation would; the server answers from the
//! memory state only and reports the prompt tokens it sent beside the prompt tokens the
//! replayed transcript would have cost.
//!
//! Reported per N (fractions 0..1): `fact_in_prompt_recall` (the expected value is in the
//! memory state the model saw, as rendered), `answer_recall` (the answer contains it),
//! `token_savings` (1 − Σ prompt tokens sent / Σ prompt tokens a transcript replay would send,
//! over **every turn of the session** — plant, update, forget, ask — the seed's definition: its
//! baseline is the cumulative cost of replaying the transcript at each turn),
//! `question_token_savings` (the same over the ask turns only), `stale_rate` (an updated fact
//! answered or rendered with its old value), `leak_rate` (a forgotten value in the answer or
//! the prompt), `instruction_echo_rate` (a generated answer that shows the memory state's
//! instruction), `session_turns`. The replay cost holds the assistant's real replies, so the
//! savings depend on their length as well as on what the server sends: a planting turn the
//! server acknowledges "Noted." costs the replayed transcript 3 tokens, where the model's own
//! reply ("I'm sorry for your loss. …") cost it up to 24; the report gives the prompt tokens
//! sent per turn beside it. Planting replies get 24 tokens up to N = 128 and one token above
//! ([`FULL_REPLIES_UP_TO`]), which shortens the replayed transcript there (the savings are then
//! an underestimate). For N ≥ 256 the answers (which need generation) are sampled: 64 questions
//! spread over the facts plus every updated and forgotten one; prompt recall is taken on every
//! fact. The server takes at most 4096 messages a request, so at N = 1024 the last ~250 turns
//! send the system prompt and the latest 4094 messages only (the replay cost is undercounted:
//! the savings there are an underestimate). Every run but `--quick` also measures chat latency
//! with the heartbeat on vs off (two servers in the normal chat configuration — recall,
//! capture, consolidation; `direct` off, so the model answers each turn — turns interleaved so
//! load hits both). The session savings count the turns memory answers directly (`direct`: the
//! acknowledgement, forget answers, abstentions) as sending 0 tokens, since no prompt is sent;
//! the report gives how many turns ran the model. `--json` prints one JSON
//! object per N.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::report::{Better, Figure, Report, Summary};
use super::serve_child::ServeChild;
use super::BenchContext;

/// The N of a full run.
pub const DEFAULT_NS: &[usize] = &[8, 16, 32, 64, 256, 1024];
/// Questions whose answers are generated at large N.
pub const ANSWER_SAMPLE: usize = 64;
/// Tokens generated per question.
const ANSWER_TOKENS: u32 = 24;

const OWNERS: &[&str] = &[
    "server",
    "laptop",
    "router",
    "printer",
    "car",
    "bike",
    "boat",
    "dog",
    "cat",
    "gym",
    "bank",
    "office",
    "cabin",
    "phone",
    "tablet",
    "camera",
    "drone",
    "piano",
    "guitar",
    "locker",
    "garage",
    "workshop",
    "studio",
    "shop",
    "school",
    "club",
    "team",
    "project",
    "sister",
    "brother",
    "mother",
    "father",
    "dentist",
    "doctor",
    "landlord",
    "neighbour",
    "boss",
    "friend",
    "cousin",
    "uncle",
    "aunt",
    "tutor",
    "coach",
    "lawyer",
    "barber",
    "plumber",
    "mechanic",
    "vet",
    "pharmacy",
    "library",
    "bakery",
    "hotel",
    "flat",
    "house",
    "farm",
    "garden",
    "warehouse",
    "backup disk",
    "nas",
    "database",
    "website",
    "mailbox",
    "vpn",
    "build box",
];

/// (facet, value kind).
const FACETS: &[(&str, Kind)] = &[
    ("ip", Kind::Ip),
    ("port", Kind::Port),
    ("pin", Kind::Pin),
    ("nickname", Kind::Name),
    ("email", Kind::Email),
    ("serial", Kind::Serial),
    ("colour", Kind::Word),
    ("room", Kind::Port),
    ("code", Kind::Pin),
    ("alias", Kind::Name),
    ("contact", Kind::Email),
    ("tag", Kind::Serial),
    ("password hint", Kind::Word),
    ("floor", Kind::Port),
    ("account", Kind::Serial),
    ("motto", Kind::Word),
];

#[derive(Clone, Copy)]
enum Kind {
    Ip,
    Port,
    Pin,
    Name,
    Email,
    Serial,
    Word,
}

const NAMES: &[&str] = &[
    "Aurora", "Kestrel", "Juniper", "Marlow", "Sable", "Tamsin", "Orrin", "Wren", "Calder",
    "Ysolde", "Bramble", "Isolde", "Fenwick", "Odessa", "Larkin", "Perrin",
];
const WORDS: &[&str] = &[
    "teal", "amber", "crimson", "violet", "ochre", "cobalt", "saffron", "jade", "maroon", "ivory",
    "indigo", "coral", "olive", "scarlet", "umber", "cerulean",
];

const PLANT_FORMS: &[&str] = &[
    "My {o}'s {f} is {v}.",
    "The {f} of my {o} is {v}.",
    "By the way, my {o}'s {f} is {v}.",
    "Just so you know, the {f} of my {o} is {v}.",
    "FYI my {o}'s {f} is {v}.",
    "Oh and my {o}'s {f} is {v}.",
];
const UPDATE_FORMS: &[&str] = &[
    "Actually, my {o}'s {f} is {v}.",
    "Update: the {f} of my {o} is now {v}.",
];
const QUESTION_FORMS: &[&str] = &[
    "What is my {o}'s {f}?",
    "What's the {f} of my {o}?",
    "Remind me of my {o}'s {f}?",
    "Tell me my {o}'s {f}.",
    "Do you know my {o}'s {f}?",
    "What {f} does my {o} have?",
];

/// One planted fact.
#[derive(Debug, Clone)]
struct PlantedFact {
    owner: &'static str,
    facet: &'static str,
    value: String,
    /// The value before an update (stale if it comes back).
    old: Option<String>,
    forgotten: bool,
}

fn value(kind: Kind, i: usize, round: usize) -> String {
    let j = i * 2 + round; // distinct per fact and per update round
    match kind {
        Kind::Ip => format!(
            "10.{}.{}.{}",
            1 + j / 250 % 250,
            1 + j % 250,
            1 + (j * 7) % 250
        ),
        Kind::Port => format!("{}", 2000 + j * 3),
        Kind::Pin => format!("{}", 40000 + (j * 11) % 50000),
        Kind::Name => format!("{}{}", NAMES[j % NAMES.len()], j),
        Kind::Email => format!("{}{j}@example.org", NAMES[j % NAMES.len()].to_lowercase()),
        Kind::Serial => format!("SN-{:05}", 10000 + j * 37),
        Kind::Word => format!("{}-{j}", WORDS[j % WORDS.len()]),
    }
}

fn fill(form: &str, f: &PlantedFact, v: &str) -> String {
    form.replace("{o}", f.owner)
        .replace("{f}", f.facet)
        .replace("{v}", v)
}

/// N facts over distinct (owner, facet) pairs: fact i = owner i mod 64, facet
/// (i div 64 + i) mod 16 — a bijection onto the 1024 pairs.
fn facts(n: usize) -> Vec<PlantedFact> {
    (0..n)
        .map(|i| {
            let (q, r) = (i / OWNERS.len(), i % OWNERS.len());
            let (facet, kind) = FACETS[(q + r) % FACETS.len()];
            PlantedFact {
                owner: OWNERS[r],
                facet,
                value: value(kind, i, 0),
                old: None,
                forgotten: false,
            }
        })
        .collect()
}

fn kind_of(facet: &str) -> Kind {
    FACETS
        .iter()
        .find(|(f, _)| *f == facet)
        .map(|(_, k)| *k)
        .unwrap_or(Kind::Word)
}

/// An `engram serve` child process.
struct Server(ServeChild);

impl Server {
    /// `engram serve` with `extra` arguments and a body limit that fits the largest planted
    /// conversation.
    fn start(ctx: &BenchContext<'_>, data: &Path, extra: &[&str]) -> anyhow::Result<Server> {
        let args = [&["--max-body-bytes", "16000000"][..], extra].concat();
        Ok(Server(ServeChild::start(ctx, data, &args)?))
    }

    /// One non-streaming native turn; the whole answer body.
    fn chat(&self, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let mut stream = TcpStream::connect(self.0.addr).context("cannot connect to the server")?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        let request = format!(
            "POST /v1/chat HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, rest) = answer
            .split_once("\r\n\r\n")
            .context("an answer without headers")?;
        if !head.lines().next().unwrap_or("").contains(" 200 ") {
            bail!("the server answered {head:?}: {rest}");
        }
        serde_json::from_str(rest).context("an answer that is not JSON")
    }
}

fn turn(
    server: &Server,
    session: &str,
    messages: Vec<Value>,
    max_tokens: u32,
    memory: Value,
) -> anyhow::Result<Value> {
    server.chat(&json!({
        "messages": messages,
        "session": session,
        "max_tokens": max_tokens,
        "temperature": 0,
        "memory": memory,
    }))
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// The memory state the model saw this turn: each in-prompt memory as rendered into the
/// prompt (`rendered`, or the stored `text` from a server that does not report it).
fn in_prompt(reply: &Value) -> Vec<String> {
    reply["memory"]["recalled"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["in_prompt"].as_bool().unwrap_or(false))
        .filter_map(|m| m["rendered"].as_str().or(m["text"].as_str()))
        .map(str::to_lowercase)
        .collect()
}

fn answer_text(reply: &Value) -> String {
    reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

/// One N's results.
#[derive(Debug, Clone)]
pub struct HorizonResult {
    /// Facts planted.
    pub n: usize,
    /// Expected value present in the rendered memory state.
    pub fact_in_prompt_recall: f64,
    /// Answer contains the expected value.
    pub answer_recall: f64,
    /// 1 − no-replay prompt tokens / replay prompt tokens, summed over every turn of the
    /// session (plant, update, forget, ask).
    pub token_savings: f64,
    /// The same over the ask turns only.
    pub question_token_savings: f64,
    /// (prompt tokens sent, prompt tokens a replaying client would send) over the session.
    pub session_prompt_tokens: (u64, u64),
    /// Turns of the session (plant, update, forget, ask).
    pub session_turns: u64,
    /// Turns of the session the model answered (the rest memory answered directly and sent
    /// no prompt: `memory.direct`).
    pub model_turns: u64,
    /// Updated facts answered or rendered with their old value.
    pub stale_rate: f64,
    /// Forgotten facts whose value reached the answer or the prompt.
    pub leak_rate: f64,
    /// Generated answers that show the memory state's instruction (the host's prompt text,
    /// which the server cuts where it begins).
    pub instruction_echo_rate: f64,
    /// How many answers were generated.
    pub answers: usize,
}

impl HorizonResult {
    /// The JSON object `--json` prints: the keys (`n`, `fact_in_prompt_recall`,
    /// `answer_recall`, `token_savings`, `stale_rate`, `leak_rate`) plus the per-question
    /// savings and the session's token sums.
    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "fact_in_prompt_recall": self.fact_in_prompt_recall,
            "answer_recall": self.answer_recall,
            "token_savings": self.token_savings,
            "question_token_savings": self.question_token_savings,
            "session_prompt_tokens": self.session_prompt_tokens.0,
            "session_replay_prompt_tokens": self.session_prompt_tokens.1,
            "session_turns": self.session_turns,
            "model_turns": self.model_turns,
            "stale_rate": self.stale_rate,
            "leak_rate": self.leak_rate,
            "instruction_echo_rate": self.instruction_echo_rate,
        })
    }
}

const NO_REPLAY: fn() -> Value = || json!({"recall": true, "capture": true, "no_replay": true});
/// The client's system prompt unless `--system-prompt` gives another.
const SYSTEM: &str = "You are Engram. Answer in one short sentence, using the facts you remember.";

/// Tokens the assistant may reply with on a planting, update or forget turn: its real reply
/// goes into the transcript a replaying client would resend. Above
/// [`FULL_REPLIES_UP_TO`] facts the replies are cut to one token to keep the run short, which
/// makes the replayed transcript shorter and the session savings an underestimate.
const PLANT_REPLY_TOKENS: u32 = 24;
/// Most messages the server accepts in one request (`engram serve`'s limit).
const MAX_MESSAGES: usize = 4096;
/// Largest N whose planting turns get their full replies.
pub const FULL_REPLIES_UP_TO: usize = 128;

/// Prompt tokens sent and what replaying the transcript would have sent, summed over turns.
#[derive(Debug, Clone, Copy, Default)]
struct Tokens {
    sent: u64,
    replay: u64,
    turns: u64,
    /// Turns the model answered (not `memory.direct`).
    model_turns: u64,
}

impl Tokens {
    fn add(&mut self, reply: &Value) {
        let tokens = &reply["memory"]["tokens"];
        self.sent += tokens["prompt_tokens"].as_u64().unwrap_or(0);
        self.replay += tokens["replay_prompt_tokens"].as_u64().unwrap_or(0);
        self.turns += 1;
        if reply["memory"]["direct"] != json!(true) {
            self.model_turns += 1;
        }
    }

    fn savings(&self) -> f64 {
        if self.replay == 0 {
            0.0
        } else {
            1.0 - self.sent as f64 / self.replay as f64
        }
    }
}

/// Plant, update, forget and ask N facts on `server`, as one conversation.
fn horizon(server: &Server, n: usize, system: &str) -> anyhow::Result<HorizonResult> {
    let session = format!("horizon-{n}");
    let mut facts = facts(n);
    let mut transcript: Vec<Value> = vec![json!({"role": "system", "content": system})];
    let (mut session_tokens, mut question_tokens) = (Tokens::default(), Tokens::default());
    // Every turn sends the whole transcript so far plus the new text, as a replaying client
    // would; the server answers in no-replay mode (system prompt, latest user text, memory
    // state) and reports both token counts. The assistant's real reply joins the transcript.
    let mut say = |text: String, max_tokens: u32| -> anyhow::Result<Value> {
        // The server accepts at most MAX_MESSAGES messages: past that (N = 1024) the system
        // prompt and the latest turns are sent, so the replay cost is undercounted there.
        let skip = (transcript.len() + 1).saturating_sub(MAX_MESSAGES);
        let mut messages = vec![transcript[0].clone()];
        messages.extend(transcript.iter().skip(1 + skip).cloned());
        messages.push(user(&text));
        let reply = turn(server, &session, messages, max_tokens, NO_REPLAY())?;
        session_tokens.add(&reply);
        transcript.push(user(&text));
        transcript.push(json!({"role": "assistant", "content": answer_text(&reply)}));
        Ok(reply)
    };
    let plant_tokens = if n <= FULL_REPLIES_UP_TO {
        PLANT_REPLY_TOKENS
    } else {
        1
    };
    for (i, fact) in facts.clone().iter().enumerate() {
        let form = PLANT_FORMS[i % PLANT_FORMS.len()];
        say(fill(form, fact, &fact.value), plant_tokens)?;
    }
    for i in (0..n).step_by(8) {
        let new = value(kind_of(facts[i].facet), i, 1);
        let form = UPDATE_FORMS[(i / 8) % UPDATE_FORMS.len()];
        say(fill(form, &facts[i], &new), plant_tokens)?;
        facts[i].old = Some(std::mem::replace(&mut facts[i].value, new));
    }
    for i in (4..n).step_by(8) {
        say(
            format!("Forget my {}'s {}.", facts[i].owner, facts[i].facet),
            plant_tokens,
        )?;
        facts[i].forgotten = true;
    }
    let step = if n > 128 {
        n.div_ceil(ANSWER_SAMPLE)
    } else {
        1
    };
    let (mut in_prompt_hits, mut kept) = (0usize, 0usize);
    let (mut answer_hits, mut answered) = (0usize, 0usize);
    let (mut stale, mut updated, mut leaks, mut forgotten) = (0usize, 0usize, 0usize, 0usize);
    let mut echoes = 0usize;
    let instructions = [
        engram_server::memory::STATE_INSTRUCTION.to_lowercase(),
        engram_server::memory::OPENED_INSTRUCTION.to_lowercase(),
    ];
    for (i, fact) in facts.iter().enumerate() {
        let question = fill(QUESTION_FORMS[i % QUESTION_FORMS.len()], fact, "");
        let generate = i % step == 0 || fact.old.is_some() || fact.forgotten;
        let reply = say(question, if generate { ANSWER_TOKENS } else { 1 })?;
        question_tokens.add(&reply);
        let state = in_prompt(&reply);
        let answer = if generate {
            answer_text(&reply)
        } else {
            String::new()
        };
        echoes += usize::from(instructions.iter().any(|i| answer.contains(i.as_str())));
        let value = fact.value.to_lowercase();
        if fact.forgotten {
            forgotten += 1;
            if answer.contains(&value) || state.iter().any(|t| t.contains(&value)) {
                leaks += 1;
            }
            continue;
        }
        kept += 1;
        if state.iter().any(|t| t.contains(&value)) {
            in_prompt_hits += 1;
        }
        if generate {
            answered += 1;
            if answer.contains(&value) {
                answer_hits += 1;
            }
        }
        if let Some(old) = &fact.old {
            updated += 1;
            let old = old.to_lowercase();
            if answer.contains(&old) || state.iter().any(|t| t.contains(&old)) {
                stale += 1;
            }
        }
    }
    let frac = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(HorizonResult {
        n,
        fact_in_prompt_recall: frac(in_prompt_hits, kept),
        answer_recall: frac(answer_hits, answered),
        token_savings: session_tokens.savings(),
        question_token_savings: question_tokens.savings(),
        session_prompt_tokens: (session_tokens.sent, session_tokens.replay),
        session_turns: session_tokens.turns,
        model_turns: session_tokens.model_turns,
        stale_rate: frac(stale, updated),
        instruction_echo_rate: frac(echoes, answered + forgotten),
        leak_rate: frac(leaks, forgotten),
        answers: answered,
    })
}

/// Turns per server in the heartbeat on/off latency comparison. The p99 of 150 turns is the
/// second-slowest and its on/off ratio moved 0.91–1.11 between runs of one binary; with 400
/// it is the fourth-slowest.
pub const LATENCY_TURNS: usize = 400;

/// Chat latency (ms per turn) on each of `servers`, `turns` short conversations each, in the
/// normal chat configuration (recall, capture and consolidation on), the servers taking
/// turns; after each turn a pause long enough for an idle-gated heartbeat to run. Returns
/// one list of samples per server.
fn latencies(servers: &[&Server], turns: usize, pause: Duration) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::with_capacity(turns); servers.len()];
    let planted = facts(turns);
    for (i, fact) in planted.iter().enumerate() {
        for (server, samples) in servers.iter().zip(out.iter_mut()) {
            let start = Instant::now();
            turn(
                server,
                &format!("latency-{i}"),
                vec![user(&fill(PLANT_FORMS[0], fact, &fact.value))],
                8,
                // Real chat: recall on. Each turn states another κ, so no gist of the
                // conversations the heartbeat-on server consolidated is relevant to it
                // (`gist_relevance`): both servers build the same prompts, and the
                // difference is the heartbeat's rounds alone. `direct` off: the model
                // answers the statement (a direct "Noted." would time the host's bookkeeping
                // alone, not a chat turn).
                json!({"recall": true, "capture": true, "consolidate": true, "direct": false}),
            )?;
            samples.push(start.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(pause);
        }
    }
    Ok(out)
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn p99(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = ((sorted.len() as f64) * 0.99).ceil() as usize;
    sorted[at.clamp(1, sorted.len()) - 1]
}

/// Runs the suite.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    let ns: Vec<usize> = if !ctx.n.is_empty() {
        ctx.n.clone()
    } else if ctx.quick {
        vec![8]
    } else {
        DEFAULT_NS.to_vec()
    };
    let mut report = Report::new("horizon", ctx.quick, ctx.machine);
    let system = ctx.system_prompt.as_deref().unwrap_or(SYSTEM);
    for &n in &ns {
        if n == 0 || n > OWNERS.len() * FACETS.len() {
            bail!("--n {n}: give 1..={}", OWNERS.len() * FACETS.len());
        }
        let data = tempfile::tempdir()?;
        let server = Server::start(ctx, data.path(), &[])?;
        let result = horizon(&server, n, system);
        server.0.stop()?;
        let result = result?;
        if ctx.json_stdout {
            println!("{}", result.to_json());
        }
        let one = |x: f64| Summary::of(&[x]).context("no samples");
        let target = |t: &str| t.to_string();
        let recall_target = match n {
            8 | 32 => target("1.0"),
            1024 => target("≥ 0.99"),
            _ => target("—"),
        };
        report.figures.push(
            Figure::alone(
                &format!("N={n} fact in prompt"),
                "fraction",
                Better::Higher,
                one(result.fact_in_prompt_recall)?,
            )
            .with_target(&recall_target),
        );
        let mut answer = Figure::alone(
            &format!("N={n} answer recall ({} answers)", result.answers),
            "fraction",
            Better::Higher,
            one(result.answer_recall)?,
        );
        if n == 32 {
            answer = answer.with_target("≥ 0.95");
        }
        report.figures.push(answer);
        let (sent, replay) = result.session_prompt_tokens;
        let mut savings = Figure::alone(
            &format!("N={n} token savings vs transcript, session ({sent} / {replay} tokens)"),
            "fraction",
            Better::Higher,
            one(result.token_savings)?,
        );
        if n == 32 {
            savings = savings.with_target("≥ 0.975");
        }
        report.figures.push(savings);
        // What a turn costs, whatever the replies cost the replayed transcript.
        report.figures.push(Figure::alone(
            &format!(
                "N={n} prompt tokens sent per turn ({} turns)",
                result.session_turns
            ),
            "tokens",
            Better::Lower,
            one(sent as f64 / result.session_turns.max(1) as f64)?,
        ));
        report.figures.push(Figure::alone(
            &format!(
                "N={n} prompt tokens per turn the model answered ({} of {})",
                result.model_turns, result.session_turns
            ),
            "tokens",
            Better::Lower,
            one(sent as f64 / result.model_turns.max(1) as f64)?,
        ));
        report.figures.push(Figure::alone(
            &format!("N={n} token savings vs transcript, ask turns only"),
            "fraction",
            Better::Higher,
            one(result.question_token_savings)?,
        ));
        report.figures.push(
            Figure::alone(
                &format!("N={n} stale after update"),
                "fraction",
                Better::Lower,
                one(result.stale_rate)?,
            )
            .with_target("0"),
        );
        report.figures.push(
            Figure::alone(
                &format!("N={n} leak after forget"),
                "fraction",
                Better::Lower,
                one(result.leak_rate)?,
            )
            .with_target("0"),
        );
        report.figures.push(Figure::alone(
            &format!("N={n} answers showing the memory instruction"),
            "fraction",
            Better::Lower,
            one(result.instruction_echo_rate)?,
        ));
    }
    if !ctx.quick {
        // Heartbeat on vs off: two servers side by side, turns alternating between them
        // (off, on, off, on, …) so a change of machine load hits both alike; each pause is
        // long enough for the idle-gated heartbeat to consolidate the turn before the next.
        let turns = LATENCY_TURNS;
        let pause = Duration::from_millis(700);
        let (off_dir, on_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let off = Server::start(ctx, off_dir.path(), &[])?;
        let on = Server::start(
            ctx,
            on_dir.path(),
            &[
                "--heartbeat-interval-ms",
                "100",
                "--heartbeat-idle-ms",
                "300",
            ],
        )?;
        let load_before = load_average();
        let samples = latencies(&[&off, &on], turns, pause);
        let load_after = load_average();
        off.0.stop()?;
        on.0.stop()?;
        let mut samples = samples?.into_iter();
        let (off_ms, on_ms) = (
            samples.next().unwrap_or_default(),
            samples.next().unwrap_or_default(),
        );
        let summary = |ms: &[f64]| Summary::of(ms).context("no latency samples");
        report.figures.push(
            Figure::against(
                &format!("chat latency, heartbeat on ({turns} turns each, interleaved)"),
                "ms",
                Better::Lower,
                summary(&on_ms)?,
                "heartbeat off",
                summary(&off_ms)?,
            )
            .with_target("p99 within 10% of off"),
        );
        report.notes.push(format!(
            "heartbeat latency (recall, capture and consolidation on): p99 on {:.0} ms vs \
             off {:.0} ms (on/off {:.3}); load average {load_before} before, {load_after} after",
            p99(&on_ms),
            p99(&off_ms),
            p99(&on_ms) / p99(&off_ms)
        ));
    }
    report.notes.push(format!(
        "the client's system prompt, sent every turn: {system:?}"
    ));
    report.notes.push(
        "no-replay mode through `engram serve`; facts planted through the capture plugin; \
         every turn sends the transcript so far, so the server reports what replaying it would \
         cost (session savings: all turns; ask-turn savings: questions only); planting replies \
         get 24 tokens up to N = 128 and 1 token above (shorter transcript: an underestimate); \
         at N > 128 answers are generated for a sample of 64 questions (plus every updated \
         and forgotten fact), prompt recall is taken on all"
            .into(),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_distinct_pairs_with_distinct_values() {
        let all = facts(1024);
        let pairs: std::collections::HashSet<_> = all.iter().map(|f| (f.owner, f.facet)).collect();
        assert_eq!(pairs.len(), 1024);
        let values: std::collections::HashSet<_> = all.iter().map(|f| f.value.clone()).collect();
        assert_eq!(values.len(), 1024);
    }

    #[test]
    fn p99_of_few_samples_is_the_largest() {
        assert_eq!(p99(&[1.0, 5.0, 3.0]), 5.0);
    }
}
