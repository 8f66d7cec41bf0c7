//! Administration routes (all behind the admin token): the memory store (list, history,
//! forget, verify, seal) and the plugin slots (health, hot swap).
//!
//! Without a configured token the routes answer 401 and say how to set one: administration
//! is never open by default, even on loopback.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use engram_memory::{Cell, Selector};
use engram_plugins::{Grants, Manifest, PluginKind};

use crate::error::ApiError;
use crate::memory::MemoryServices;
use crate::AppState;

/// Largest plugin component accepted by `PUT /v1/plugins/{kind}`.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// The administration routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/memory/cells", get(list_cells))
        .route("/v1/memory/history", get(history))
        .route("/v1/memory/forget", post(forget))
        .route("/v1/memory/verify", get(verify))
        .route("/v1/memory/seal", get(seal))
        .route("/v1/plugins", get(plugins))
        .route(
            "/v1/plugins/{kind}",
            put(swap_plugin).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
}

/// Check the `Authorization: Bearer` header against the configured token (constant time).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError {
            message: "administration is disabled: start the server with --admin-token (or \
                      ENGRAM_ADMIN_TOKEN) and send it as `Authorization: Bearer <token>`"
                .into(),
            ..ApiError::unauthorized()
        });
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let same_length = given.len() == expected.len();
    let difference = given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_length && difference == 0 {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn memory(state: &AppState) -> Result<Arc<MemoryServices>, ApiError> {
    state
        .memory
        .clone()
        .ok_or_else(|| ApiError::not_found("this server runs without memory (--no-memory)".into()))
}

/// Run blocking store or plugin work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(format!("administration task failed: {err}")))?
}

fn cell_json(cell: &Cell) -> serde_json::Value {
    json!({
        "id": cell.id.to_string(),
        "subject": cell.content.subject,
        "facet": cell.content.facet,
        "value": cell.content.value.normalized,
        "text": cell.content.text,
        "session": cell.content.source.session,
        "turn": cell.content.source.turn,
        "valid_from_us": cell.content.valid_from,
        "valid_to_us": cell.valid_to,
        "recorded_at_us": cell.recorded_at,
        "line": cell.line_seq,
    })
}

async fn list_cells(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let memory = memory(&state)?;
        blocking(move || {
            let cells: Vec<_> = memory.store.list().iter().map(cell_json).collect();
            Ok(Json(json!({"object": "list", "data": cells})).into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Query of `GET /v1/memory/history`.
#[derive(Deserialize)]
struct HistoryQuery {
    subject: String,
    facet: String,
}

async fn history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let Query(query) = query.map_err(|err| {
            ApiError::invalid(
                Some("subject".into()),
                format!("give ?subject=…&facet=…: {err}"),
            )
        })?;
        let memory = memory(&state)?;
        blocking(move || {
            let versions: Vec<_> = memory
                .store
                .history(&query.subject, &query.facet)
                .iter()
                .map(cell_json)
                .collect();
            Ok(Json(json!({"object": "list", "data": versions})).into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Body of `POST /v1/memory/forget`: exactly one selector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    facet: Option<String>,
    #[serde(default)]
    query: Option<String>,
}

async fn forget(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let body: ForgetBody = serde_json::from_slice(&body).map_err(|err| {
            ApiError::invalid(
                None,
                format!(
                    "give one of {{\"id\"}}, {{\"subject\",\"facet\"}} or {{\"query\"}}: {err}"
                ),
            )
        })?;
        let selector = match body {
            ForgetBody {
                id: Some(id),
                subject: None,
                facet: None,
                query: None,
            } => Selector::Id(id.parse().map_err(|_| {
                ApiError::invalid(Some("id".into()), format!("`{id}` is not a cell id"))
            })?),
            ForgetBody {
                id: None,
                subject: Some(subject),
                facet: Some(facet),
                query: None,
            } => Selector::Kappa { subject, facet },
            ForgetBody {
                id: None,
                subject: None,
                facet: None,
                query: Some(query),
            } => Selector::Query(query),
            _ => {
                return Err(ApiError::invalid(
                    None,
                    "give exactly one of {\"id\"}, {\"subject\",\"facet\"} or {\"query\"}".into(),
                ))
            }
        };
        let memory = memory(&state)?;
        blocking(move || {
            let report = memory
                .store
                .forget(selector)
                .map_err(|err| ApiError::internal(format!("forget failed: {err}")))?;
            let forgotten: Vec<_> = report
                .forgotten
                .iter()
                .map(|(id, hash)| json!({"id": id.to_string(), "content_hash": engram_memory::to_hex(hash)}))
                .collect();
            Ok(Json(json!({"forgotten": forgotten})).into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let memory = memory(&state)?;
        blocking(move || {
            let report = memory
                .store
                .verify()
                .map_err(|err| ApiError::internal(format!("verify failed: {err}")))?;
            Ok(Json(json!({
                "ok": report.problem.is_none(),
                "lines": report.lines,
                "cells": report.cells,
                "conversations": report.conversations,
                "head": engram_memory::to_hex(&report.head),
                "problem": report.problem.map(|p| format!("{p:?}")),
            }))
            .into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn seal(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let memory = memory(&state)?;
        blocking(move || {
            let seal = memory
                .store
                .seal()
                .map_err(|err| ApiError::internal(format!("seal failed: {err}")))?;
            Ok(Json(serde_json::to_value(seal).unwrap_or_default()).into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn plugins(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let memory = memory(&state)?;
        let slots: Vec<_> = [
            PluginKind::Judge,
            PluginKind::RecallPolicy,
            PluginKind::Capture,
        ]
        .into_iter()
        .filter_map(|kind| memory.slot(kind).map(|slot| (kind, slot)))
        .map(|(kind, slot)| {
            let current = slot.current();
            let health = slot.health();
            json!({
                "kind": kind.to_string(),
                "plugin": current.name,
                "hash": current.hash,
                "calls": health.calls,
                "failures": health.failures,
                "quarantined": health.quarantined,
                "swaps": health.swaps,
            })
        })
        .collect();
        Ok::<_, ApiError>(Json(json!({"object": "list", "data": slots})).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn swap_plugin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let kind: PluginKind = kind.parse().map_err(|_| {
            ApiError::not_found(format!(
                "no plugin slot `{kind}`; swappable slots: judge, recall-policy, capture"
            ))
        })?;
        let body = body
            .map_err(|err| ApiError::invalid(None, format!("cannot read the component: {err}")))?;
        let memory = memory(&state)?;
        if memory.slot(kind).is_none() {
            return Err(ApiError::not_found(format!("no swappable slot for {kind}")));
        }
        let name = headers
            .get("x-engram-plugin-name")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("uploaded")
            .to_string();
        blocking(move || {
            let manifest = Manifest {
                name,
                ..Manifest::default()
            };
            // Compile, pre-instantiate and smoke-call before the swap; in-flight calls keep
            // the old plugin.
            let loaded = memory
                .host
                .prepare_bytes(kind, &body, manifest, &Grants::default())
                .map_err(|err| ApiError::invalid(None, format!("component refused: {err}")))?;
            let slot = memory.slot(kind).expect("checked above");
            let report = slot
                .swap(loaded)
                .map_err(|err| ApiError::invalid(None, format!("swap refused: {err}")))?;
            Ok(Json(json!({
                "kind": kind.to_string(),
                "old_hash": report.old_hash,
                "new_hash": report.new_hash,
                "plugin": report.new_name,
            }))
            .into_response())
        })
        .await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}
