//! HTTP routes: request parsing and validation, then streaming or collected answers built
//! from the engine worker's events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::metrics::RouteLabels;
use crate::openai::{ChatRequest, FinishReason, MemoryKnobs, RequestLimits, Usage};
use crate::worker::{GenerationEvent, GenerationRequest, MemoryReport};
use crate::AppState;

/// `system_fingerprint` of a turn computed in exact mode (float turns report none).
pub const EXACT_FINGERPRINT: &str = "engram-exact";

/// Header naming the session a request belongs to (the `session` body field wins).
pub const SESSION_HEADER: &str = "x-engram-session";

const CONSOLE_HTML: &str = include_str!("../console/index.html");

/// Build the router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/", get(console))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/chat", post(native_chat))
        .route("/v1/abort/{id}", post(abort))
        .route("/v1/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .merge(crate::admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn console() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {uri}; see /v1/models, /v1/chat/completions, /v1/chat"
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "invalid_request_error",
        param: None,
        message: format!("{method} is not allowed on {uri}"),
        code: Some("method_not_allowed"),
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    count(&state, "/v1/models", StatusCode::OK);
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.config.model_name,
            "object": "model",
            "created": unix_now(),
            "owned_by": "engram",
        }]
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    count(&state, "/v1/metrics", StatusCode::OK);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn abort(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if state.engine.abort(&id) {
        count(&state, "/v1/abort", StatusCode::OK);
        Json(json!({"id": id, "aborted": true})).into_response()
    } else {
        count(&state, "/v1/abort", StatusCode::NOT_FOUND);
        ApiError::not_found(format!("no running generation with id `{id}`")).into_response()
    }
}

/// Which protocol flavour a chat request came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    OpenAi,
    Native,
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    chat(state, headers, body, Flavour::OpenAi).await
}

async fn native_chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    chat(state, headers, body, Flavour::Native).await
}

async fn chat(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    flavour: Flavour,
) -> Response {
    let route = match flavour {
        Flavour::OpenAi => "/v1/chat/completions",
        Flavour::Native => "/v1/chat",
    };
    let response = match start_chat(&state, &headers, body, flavour).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    count(&state, route, response.status());
    response
}

async fn start_chat(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    flavour: Flavour,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status,
                ..ApiError::invalid(
                    None,
                    format!(
                        "request body is larger than the {} bytes this server accepts",
                        state.config.max_body_bytes
                    ),
                )
            }
        } else {
            ApiError {
                status,
                ..ApiError::invalid(None, format!("cannot read the request body: {rejection}"))
            }
        }
    })?;
    let request = ChatRequest::parse(&body)?;
    request.validate(RequestLimits {
        max_tokens: state.config.max_tokens_limit,
        max_messages: 4096,
    })?;
    // The native endpoint recalls and captures unless told otherwise; the OpenAI endpoint
    // uses memory only when the request enables it.
    let memory = match (request.memory, flavour) {
        (Some(knobs), _) => knobs,
        (None, Flavour::Native) => MemoryKnobs {
            recall: true,
            capture: true,
            consolidate: true,
            ..MemoryKnobs::default()
        },
        (None, Flavour::OpenAi) => MemoryKnobs::default(),
    };
    let session = request.session.clone().or_else(|| {
        headers
            .get(SESSION_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    if let Some(session) = &session {
        crate::sessions::check_session_name(session)?;
    }
    // Server-side tools are a native-endpoint feature.
    let server_tools = match flavour {
        Flavour::Native => request.server_tools,
        Flavour::OpenAi => None,
    };
    let id = new_completion_id();
    let stream = request.stream;
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|options| options.include_usage);
    let generation = GenerationRequest {
        id: id.clone(),
        session,
        max_tokens: request
            .max_tokens()
            .unwrap_or(state.config.default_max_tokens),
        request,
        received: std::time::Instant::now(),
        memory,
        server_tools,
    };
    let events = state.engine.submit(generation)?;
    let created = unix_now();
    let model = state.config.model_name.clone();
    if stream {
        let stream = sse_stream(
            events,
            id,
            created,
            model,
            include_usage || flavour == Flavour::Native,
            flavour,
        );
        Ok(Sse::new(stream).into_response())
    } else {
        collect(events, id, created, model, flavour).await
    }
}

/// Gather a whole answer for a non-streaming request.
async fn collect(
    mut events: mpsc::Receiver<GenerationEvent>,
    id: String,
    created: u64,
    model: String,
    flavour: Flavour,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut session_name = None;
    let mut fingerprint = None;
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Started { session, exact, .. } => {
                session_name = Some(session);
                fingerprint = exact.then_some(EXACT_FINGERPRINT);
            }
            GenerationEvent::Delta(delta) => text.push_str(&delta),
            GenerationEvent::Failed(err) => return Err(err),
            GenerationEvent::Finished {
                finish_reason,
                usage,
                tool_calls,
                memory,
                server_tools,
            } => {
                let mut message = json!({"role": "assistant", "content": text});
                if let Some(calls) = tool_calls {
                    // A call answer's content is the text before the call, or null.
                    let before = text.trim_end();
                    message["content"] = if before.is_empty() {
                        serde_json::Value::Null
                    } else {
                        json!(before)
                    };
                    message["tool_calls"] = serde_json::to_value(calls).unwrap_or_default();
                }
                let mut body = json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": message,
                        "finish_reason": finish_reason,
                        "logprobs": null,
                    }],
                    "usage": usage,
                    "system_fingerprint": fingerprint,
                });
                if let Some(session) = session_name {
                    body["session"] = json!(session);
                }
                if flavour == Flavour::Native {
                    body["memory"] = serde_json::to_value(memory).unwrap_or_default();
                    body["server_tools"] = serde_json::to_value(server_tools).unwrap_or_default();
                }
                return Ok(Json(body).into_response());
            }
        }
    }
    Err(ApiError::internal(
        "the engine stopped before finishing the answer; see the server log".into(),
    ))
}

/// Turn engine events into OpenAI `chat.completion.chunk` SSE events.
fn sse_stream(
    mut events: mpsc::Receiver<GenerationEvent>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    flavour: Flavour,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream(move |tx| async move {
        let chunk = |delta: serde_json::Value, finish: Option<FinishReason>| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            })
        };
        // Exact turns say so in every chunk after the first event; float chunks carry no
        // fingerprint, as before the knob existed.
        let mut fingerprint = None;
        let chunk = |delta, finish, fingerprint: Option<&str>| {
            let mut value = chunk(delta, finish);
            if let Some(fingerprint) = fingerprint {
                value["system_fingerprint"] = json!(fingerprint);
            }
            value
        };
        while let Some(event) = events.recv().await {
            let out = match event {
                GenerationEvent::Started { session, exact, .. } => {
                    fingerprint = exact.then_some(EXACT_FINGERPRINT);
                    let mut first = chunk(
                        json!({"role": "assistant", "content": ""}),
                        None,
                        fingerprint,
                    );
                    first["session"] = json!(session);
                    vec![first]
                }
                GenerationEvent::Delta(text) => {
                    vec![chunk(json!({"content": text}), None, fingerprint)]
                }
                GenerationEvent::Failed(err) => vec![err.body()],
                GenerationEvent::Finished {
                    finish_reason,
                    usage,
                    tool_calls,
                    memory,
                    server_tools,
                } => {
                    let mut out = Vec::new();
                    // Each call as OpenAI streams it: id, type and name with empty
                    // arguments first, then the arguments.
                    for (index, call) in tool_calls.iter().flatten().enumerate() {
                        out.push(chunk(
                            json!({"tool_calls": [{
                                "index": index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.function.name, "arguments": ""},
                            }]}),
                            None,
                            fingerprint,
                        ));
                        out.push(chunk(
                            json!({"tool_calls": [{
                                "index": index,
                                "function": {"arguments": call.function.arguments},
                            }]}),
                            None,
                            fingerprint,
                        ));
                    }
                    let mut last = chunk(json!({}), Some(finish_reason), fingerprint);
                    if flavour == Flavour::Native {
                        last["memory"] = memory_json(&memory);
                        last["server_tools"] =
                            serde_json::to_value(server_tools).unwrap_or_default();
                    }
                    out.push(last);
                    if include_usage {
                        out.push(usage_chunk(&id, created, &model, &usage));
                    }
                    out
                }
            };
            for value in out {
                if tx
                    .send(Event::default().data(value.to_string()))
                    .await
                    .is_err()
                {
                    return; // client went away: dropping `events` stops the generation
                }
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    })
}

fn memory_json(memory: &MemoryReport) -> serde_json::Value {
    serde_json::to_value(memory).unwrap_or_default()
}

fn usage_chunk(id: &str, created: u64, model: &str, usage: &Usage) -> serde_json::Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    })
}

/// A stream fed by an async producer through a small channel (back-pressure included).
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures_util::StreamExt;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

fn count(state: &AppState, route: &str, status: StatusCode) {
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            route: route.to_string(),
            status: status.as_u16(),
        })
        .inc();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest =
        crate::sessions::short_hash(format!("{nanos}:{n}:{}", std::process::id()).as_bytes());
    format!("chatcmpl-{digest}")
}
