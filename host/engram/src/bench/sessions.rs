//! `engram bench sessions`: what persistent KV sessions buy a multi-turn conversation.
//!
//! The real server (`engram serve`, this same binary, as a child process on a free loopback
//! port) is driven over HTTP with streaming requests. One conversation of N user turns is run
//! three ways, and time-to-first-token (request sent → first answer text received) is taken on
//! every turn:
//!
//! - **persistent**: the client resends the history each turn (as OpenAI clients do); the
//!   server finds the session derived from it and prefills only the new tokens;
//! - **stateless replay**: the very same prompts, each under a fresh session name, so the whole
//!   history is prefilled every turn (what a server without sessions does);
//! - **restart-resume**: the conversation is run to the middle, the server is stopped (SIGTERM)
//!   and started again on the same data folder, and the next turn's TTFT is compared with the
//!   same turn on the server that never stopped.
//!
//! The target: at turn N, `cached_tokens` covers the previous history and TTFT stays
//! within 1.5× of turn 1's.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::report::{Better, Figure, Report, Summary};
use super::serve_child::ServeChild;
use super::BenchContext;

/// The user side of the conversation (cycled when more turns are asked for).
const QUESTIONS: &[&str] = &[
    "Hi! I am planning a small vegetable garden. Where should I start?",
    "What vegetables are easiest for a beginner?",
    "How often should I water tomatoes?",
    "Do tomatoes need full sun?",
    "What about lettuce?",
    "Can I grow carrots in clay soil?",
    "How deep should I sow carrot seeds?",
    "What is companion planting?",
    "Which herbs go well with tomatoes?",
    "How do I keep slugs away?",
    "Is compost better than fertiliser?",
    "How do I start a compost heap?",
    "What should not go into compost?",
    "When should I plant garlic?",
    "How do I know when potatoes are ready?",
    "Can I grow vegetables in pots on a balcony?",
    "Which vegetables grow in shade?",
    "How do I save seeds for next year?",
    "What should I do in the garden in winter?",
    "Thanks! Can you sum up the three most important tips?",
];

/// Tokens per answer: long enough that the history grows by a realistic amount each turn.
const ANSWER_TOKENS: u32 = 32;

/// One streamed turn, as the client saw it.
struct Turn {
    /// Seconds from sending the request to the first answer text.
    ttft: f64,
    /// The whole answer.
    text: String,
    /// `usage.prompt_tokens`.
    prompt_tokens: u64,
    /// `usage.completion_tokens`.
    completion_tokens: u64,
    /// `usage.prompt_tokens_details.cached_tokens`.
    cached_tokens: u64,
}

/// An `engram serve` child process.
struct Server(ServeChild);

impl Server {
    /// One streaming chat turn; TTFT is taken at the first non-empty content delta.
    fn turn(&self, messages: &[Value], session: Option<&str>) -> anyhow::Result<Turn> {
        let mut body = json!({
            "messages": messages,
            "max_tokens": ANSWER_TOKENS,
            "temperature": 0,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(session) = session {
            body["session"] = json!(session);
        }
        let body = body.to_string();
        let mut stream = TcpStream::connect(self.0.addr).context("cannot connect to the server")?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        // HTTP/1.0: the answer is delimited by the connection closing (no chunked framing).
        let request = format!(
            "POST /v1/chat/completions HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let start = Instant::now();
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.contains(" 200 ") {
            let mut rest = String::new();
            reader.read_to_string(&mut rest).ok();
            bail!("the server answered {status:?}: {rest}");
        }
        let (mut ttft, mut text, mut usage) = (None, String::new(), None);
        for line in reader.lines() {
            let line = line?;
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(data).context("a chunk that is not JSON")?;
            if chunk.get("error").is_some() {
                bail!("the server failed the turn: {chunk}");
            }
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                if !delta.is_empty() && ttft.is_none() {
                    ttft = Some(start.elapsed().as_secs_f64());
                }
                text.push_str(delta);
            }
            if chunk["usage"].is_object() {
                usage = Some(chunk["usage"].clone());
            }
        }
        let usage = usage.context("the stream ended without a usage chunk")?;
        let number = |v: &Value| v.as_u64().unwrap_or(0);
        Ok(Turn {
            ttft: ttft.context("the answer had no text")?,
            text,
            prompt_tokens: number(&usage["prompt_tokens"]),
            completion_tokens: number(&usage["completion_tokens"]),
            cached_tokens: number(&usage["prompt_tokens_details"]["cached_tokens"]),
        })
    }
}

/// One repeat's measurements.
struct Run {
    persistent: Vec<Turn>,
    stateless: Vec<Turn>,
    /// TTFT of turn `resume_at` on a just-restarted server.
    resumed: Turn,
}

fn user(question: &str) -> Value {
    json!({"role": "user", "content": question})
}

fn run_once(
    ctx: &BenchContext<'_>,
    turns: usize,
    resume_at: usize,
    repeat: usize,
) -> anyhow::Result<Run> {
    let question = |i: usize| QUESTIONS[i % QUESTIONS.len()];
    let data = tempfile::tempdir().context("cannot create a temporary data folder")?;
    let server = Server(ServeChild::start(ctx, data.path(), &[])?);
    // Warm the process (thread pool, page cache) outside any session we measure.
    server.turn(&[user("Hello.")], Some(&format!("warmup-{repeat}")))?;

    // Persistent: resend the history; the server derives the session and reuses its KV cache.
    let mut history = Vec::new();
    let mut persistent = Vec::new();
    for i in 0..turns {
        history.push(user(question(i)));
        let turn = server.turn(&history, None)?;
        history.push(json!({"role": "assistant", "content": turn.text}));
        persistent.push(turn);
    }
    // Stateless replay: the same prompts, a never-seen session each turn (whole prefill).
    let mut stateless = Vec::new();
    for i in 0..turns {
        let prompt = &history[..2 * i + 1];
        stateless.push(server.turn(prompt, Some(&format!("replay-{repeat}-{i}")))?);
    }
    server.0.stop()?;

    // Restart-resume: a second conversation up to `resume_at`, a restart, then that turn.
    let data = tempfile::tempdir().context("cannot create a temporary data folder")?;
    let server = Server(ServeChild::start(ctx, data.path(), &[])?);
    server.turn(&[user("Hello.")], Some(&format!("warmup-{repeat}")))?;
    for i in 0..resume_at {
        let prompt = &history[..2 * i + 1];
        server.turn(prompt, None)?;
    }
    server.0.stop()?;
    let server = Server(ServeChild::start(ctx, data.path(), &[])?);
    let resumed = server.turn(&history[..2 * resume_at + 1], None)?;
    server.0.stop()?;
    if resumed.text != persistent[resume_at].text {
        bail!(
            "turn {} after a restart answered {:?}, without restart {:?}",
            resume_at + 1,
            resumed.text,
            persistent[resume_at].text
        );
    }
    Ok(Run {
        persistent,
        stateless,
        resumed,
    })
}

/// Runs the suite.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    let (turns, repeats) = if ctx.quick { (4, 1) } else { (20, 3) };
    let resume_at = turns / 2; // 0-based: the turn sent first after the restart
    let mut runs = Vec::new();
    for repeat in 0..repeats {
        runs.push(run_once(ctx, turns, resume_at, repeat)?);
    }
    let last = turns - 1;
    let summary = |f: &dyn Fn(&Run) -> f64| {
        Summary::of(&runs.iter().map(f).collect::<Vec<_>>()).context("no samples")
    };
    let ms = |turn: &Turn| turn.ttft * 1e3;
    let mut report = Report::new("sessions", ctx.quick, ctx.machine);
    report.figures.push(Figure::against(
        "TTFT turn 1",
        "ms",
        Better::Lower,
        summary(&|r| ms(&r.persistent[0]))?,
        "stateless replay",
        summary(&|r| ms(&r.stateless[0]))?,
    ));
    report.figures.push(Figure::against(
        &format!("TTFT turn {turns}"),
        "ms",
        Better::Lower,
        summary(&|r| ms(&r.persistent[last]))?,
        "stateless replay",
        summary(&|r| ms(&r.stateless[last]))?,
    ));
    report.figures.push(
        Figure::against(
            &format!("TTFT turn {turns} / turn 1"),
            "×",
            Better::Lower,
            summary(&|r| r.persistent[last].ttft / r.persistent[0].ttft)?,
            "stateless replay",
            summary(&|r| r.stateless[last].ttft / r.stateless[0].ttft)?,
        )
        .with_target("≤ 1.5 (persistent)"),
    );
    report.figures.push(
        Figure::alone(
            &format!("cached tokens at turn {turns} / previous history"),
            "fraction",
            Better::Higher,
            summary(&|r| {
                let previous = &r.persistent[last - 1];
                r.persistent[last].cached_tokens as f64
                    / (previous.prompt_tokens + previous.completion_tokens) as f64
            })?,
        )
        .with_target("≈ 1 (covers the previous history)"),
    );
    report.figures.push(Figure::alone(
        &format!("prompt tokens at turn {turns}"),
        "tokens",
        Better::Lower,
        summary(&|r| r.persistent[last].prompt_tokens as f64)?,
    ));
    report.figures.push(Figure::against(
        &format!("TTFT turn {} right after a restart", resume_at + 1),
        "ms",
        Better::Lower,
        summary(&|r| ms(&r.resumed))?,
        "same turn, no restart",
        summary(&|r| ms(&r.persistent[resume_at]))?,
    ));
    report.figures.push(Figure::alone(
        &format!(
            "cached tokens at turn {} after a restart / prompt",
            resume_at + 1
        ),
        "fraction",
        Better::Higher,
        summary(&|r| r.resumed.cached_tokens as f64 / r.resumed.prompt_tokens as f64)?,
    ));
    Ok(report)
}
