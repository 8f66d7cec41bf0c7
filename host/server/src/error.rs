//! API errors with OpenAI-style bodies: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI error type (`invalid_request_error`, `authentication_error`, `server_error`…).
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// What went wrong and what to do about it.
    pub message: String,
    /// A short machine-readable code, when there is one.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is malformed; `param` names the field.
    pub fn invalid(param: Option<String>, message: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            param,
            message,
            code: None,
        }
    }

    /// 404: the named thing does not exist.
    pub fn not_found(message: String) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            param: None,
            message,
            code: Some("not_found"),
        }
    }

    /// 401: an administration route without the right token.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            param: None,
            message: "this route needs the admin token: send `Authorization: Bearer <token>` \
                      (the token is set with `engram serve --admin-token` or ENGRAM_ADMIN_TOKEN)"
                .into(),
            code: Some("invalid_api_key"),
        }
    }

    /// 503: the server cannot take the request now (e.g. too many queued).
    pub fn busy(message: String) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            param: None,
            message,
            code: Some("overloaded"),
        }
    }

    /// 500: something failed inside the server.
    pub fn internal(message: String) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            param: None,
            message,
            code: None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        serde_json::json!({
            "error": Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
