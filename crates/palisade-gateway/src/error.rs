//! One error type for the gateway: each kind maps to a status code, a log level and a
//! body in the wire format of the API it answers for — `{"error": "…"}` for the Open
//! Inference Protocol and the gateway's own routes, `{"error": {"message", "type",
//! "code"}}` for the OpenAI-compatible routes. Messages are written for the client and
//! never carry internals (upstream keys, file paths, database errors); those go to the log.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Which API's error format a response uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// KServe Open Inference Protocol v2 and `/gateway/v1`: `{"error": "message"}`.
    Plain,
    /// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
}

impl Wire {
    pub fn for_path(path: &str) -> Wire {
        if path.starts_with("/v1/") {
            Wire::OpenAi
        } else {
            Wire::Plain
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Invalid,
    TooLarge,
    RateLimited,
    Overloaded,
    Blocked,
    Upstream,
    UpstreamTimeout,
    Unavailable,
    Internal,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Invalid | Kind::Blocked => StatusCode::BAD_REQUEST,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Overloaded | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Upstream => StatusCode::BAD_GATEWAY,
            Kind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error `type`.
    fn openai_type(self) -> &'static str {
        match self {
            Kind::Unauthenticated => "authentication_error",
            Kind::Forbidden => "permission_error",
            Kind::NotFound => "not_found_error",
            Kind::Conflict => "conflict_error",
            Kind::Invalid | Kind::TooLarge | Kind::Blocked => "invalid_request_error",
            Kind::RateLimited => "rate_limit_error",
            Kind::Overloaded | Kind::Unavailable => "overloaded_error",
            Kind::Upstream | Kind::UpstreamTimeout | Kind::Internal => "api_error",
        }
    }

    /// A stable machine-readable code (the OpenAI `code`, and the metrics' `reason`).
    pub fn code(self) -> &'static str {
        match self {
            Kind::Unauthenticated => "invalid_api_key",
            Kind::Forbidden => "permission_denied",
            Kind::NotFound => "model_not_found",
            Kind::Conflict => "conflict",
            Kind::Invalid => "invalid_request",
            Kind::TooLarge => "request_too_large",
            Kind::RateLimited => "rate_limit_exceeded",
            Kind::Overloaded => "overloaded",
            Kind::Blocked => "guardrail_blocked",
            Kind::Upstream => "upstream_error",
            Kind::UpstreamTimeout => "upstream_timeout",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal_error",
        }
    }
}

#[derive(Debug)]
pub struct GatewayError {
    pub kind: Kind,
    pub message: String,
    pub wire: Wire,
    /// Seconds after which a retry may succeed (429, 503).
    pub retry_after: Option<u64>,
    /// Extra response headers (rate-limit state).
    pub headers: Vec<(&'static str, String)>,
}

impl GatewayError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            wire: Wire::Plain,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, message)
    }

    /// A server-side failure: logged with its detail, reported to the client without it.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "gateway internal error");
        Self::new(Kind::Internal, "internal error (see the gateway log)")
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        if status.is_server_error() && self.kind != Kind::Internal {
            tracing::warn!(code = self.kind.code(), message = %self.message, "request failed");
        }
        let body = match self.wire {
            Wire::Plain => json!({ "error": self.message }),
            Wire::OpenAi => json!({ "error": {
                "message": self.message,
                "type": self.kind.openai_type(),
                "param": null,
                "code": self.kind.code(),
            }}),
        };
        let mut resp = (status, Json(body)).into_response();
        let h = resp.headers_mut();
        if let Some(s) = self.retry_after {
            h.insert("retry-after", HeaderValue::from(s));
        }
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        resp
    }
}

pub type GwResult<T> = Result<T, GatewayError>;
