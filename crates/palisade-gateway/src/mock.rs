//! A small OpenAI-compatible upstream for tests and benchmarks (remote LLM providers
//! cannot run here). It speaks the real wire protocol — `chat.completion`,
//! `chat.completion.chunk` SSE with `[DONE]`, `text_completion`, embeddings, `usage`,
//! OpenAI error bodies — and can be steered: a request field `"mock_reply": "…"` (a
//! gateway passes through fields it does not interpret) is answered verbatim, so a test
//! can make the "model" say something hostile, and `"mock_answer": <JSON>` on a chat
//! request is sent back as the whole answer (a malformed upstream). `POST /mock/control`
//! sets a failure rate and a delay at run time (canary tests). `GET /mock/stats` reports
//! what it received, so tests can check what left the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Share of requests answered with 500 (0–1).
    #[serde(default)]
    pub fail_rate: f64,
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Default)]
pub struct MockState {
    /// The bearer token the mock requires (`None`: any).
    pub api_key: Option<String>,
    /// A name the mock puts in `system_fingerprint`, to tell mocks apart.
    pub name: String,
    pub control: parking_lot::Mutex<Control>,
    pub requests: AtomicU64,
    pub by_model: parking_lot::Mutex<HashMap<String, u64>>,
    pub last_body: parking_lot::Mutex<Option<Value>>,
    pub last_authorization: parking_lot::Mutex<Option<String>>,
    /// The `traceparent` header of the last request.
    pub last_traceparent: parking_lot::Mutex<Option<String>>,
}

impl MockState {
    pub fn new(name: &str, api_key: Option<&str>) -> Arc<MockState> {
        Arc::new(MockState {
            name: name.to_owned(),
            api_key: api_key.map(str::to_owned),
            ..MockState::default()
        })
    }
}

pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/mock/control", post(control))
        .route("/mock/stats", get(stats))
        .with_state(state)
}

/// Binds 127.0.0.1 on `port` (0: any) and serves in the background.
pub async fn spawn(state: Arc<MockState>, port: u16) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })),
    )
        .into_response()
}

/// Shared checks: credentials, injected failure and delay, bookkeeping.
async fn admit(state: &MockState, headers: &HeaderMap, body: &Value) -> Result<(), Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *state.last_authorization.lock() = auth.clone();
    *state.last_traceparent.lock() = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &state.api_key {
        if auth.as_deref() != Some(&format!("Bearer {key}")) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.",
                "invalid_request_error",
            ));
        }
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("").to_owned();
    *state.by_model.lock().entry(model).or_default() += 1;
    *state.last_body.lock() = Some(body.clone());
    let c = state.control.lock().clone();
    if c.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(c.delay_ms)).await;
    }
    if c.fail_rate > 0.0 && fastrand::f64() < c.fail_rate {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error.",
            "server_error",
        ));
    }
    Ok(())
}

fn last_user_text(body: &Value) -> String {
    let from_messages = body.get("messages").and_then(Value::as_array).and_then(|m| {
        m.iter()
            .rev()
            .find(|x| x.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|x| match x.get("content") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(parts)) => Some(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            })
    });
    from_messages
        .or_else(|| body.get("prompt").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn reply(state: &MockState, body: &Value) -> String {
    let text = last_user_text(body);
    match body.get("mock_reply").and_then(Value::as_str) {
        Some(reply) => reply.to_owned(),
        None => format!(
            "Hello from {} ({}). You said {} bytes.",
            state.name,
            body.get("model").and_then(Value::as_str).unwrap_or("?"),
            text.len()
        ),
    }
}

fn tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4).max(1)
}

fn parse(raw: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(raw).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("bad JSON: {e}"),
            "invalid_request_error",
        ))
    })
}

async fn chat(State(state): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = match parse(&raw) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(r) = admit(&state, &headers, &body).await {
        return r;
    }
    if let Some(answer) = body.get("mock_answer") {
        return Json(answer.clone()).into_response();
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock").to_owned();
    let content = reply(&state, &body);
    let prompt_tokens = tokens(&last_user_text(&body));
    let completion_tokens = tokens(&content);
    let usage = json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens });
    let id = format!("chatcmpl-{:016x}", fastrand::u64(..));
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let chunk = |delta: Value, finish: Value| {
            json!({ "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                    "system_fingerprint": state.name,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        };
        let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
        // Split into 8-character pieces on character boundaries.
        let chars: Vec<char> = content.chars().collect();
        for piece in chars.chunks(8) {
            events.push(chunk(
                json!({ "content": piece.iter().collect::<String>() }),
                Value::Null,
            ));
        }
        events.push(chunk(json!({}), json!("stop")));
        if include_usage {
            events.push(
                json!({ "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                                "choices": [], "usage": usage }),
            );
        }
        return sse(events);
    }
    Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "system_fingerprint": state.name,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": usage,
    }))
    .into_response()
}

async fn completions(State(state): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = match parse(&raw) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(r) = admit(&state, &headers, &body).await {
        return r;
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock").to_owned();
    let text = reply(&state, &body);
    let p = tokens(&last_user_text(&body));
    let c = tokens(&text);
    let usage = json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c });
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let chars: Vec<char> = text.chars().collect();
        let mut events: Vec<Value> = chars
            .chunks(8)
            .map(|piece| {
                json!({ "id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
                        "choices": [{ "index": 0, "text": piece.iter().collect::<String>(), "finish_reason": null }] })
            })
            .collect();
        events.push(
            json!({ "id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
                            "choices": [{ "index": 0, "text": "", "finish_reason": "stop" }] }),
        );
        if include_usage {
            events.push(
                json!({ "id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
                                "choices": [], "usage": usage }),
            );
        }
        return sse(events);
    }
    Json(json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
        "choices": [{ "index": 0, "text": text, "finish_reason": "stop", "logprobs": null }],
        "usage": usage,
    }))
    .into_response()
}

async fn embeddings(State(state): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = match parse(&raw) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Err(r) = admit(&state, &headers, &body).await {
        return r;
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "`input` is required", "invalid_request_error"),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // A deterministic 8-dimensional vector from the text's bytes.
            let mut v = [0f64; 8];
            for (j, b) in s.bytes().enumerate() {
                v[j % 8] += f64::from(b) / 255.0;
            }
            json!({ "object": "embedding", "index": i, "embedding": v })
        })
        .collect();
    let p: u64 = inputs.iter().map(|s| tokens(s)).sum();
    Json(json!({
        "object": "list", "data": data,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "usage": { "prompt_tokens": p, "total_tokens": p },
    }))
    .into_response()
}

fn sse(events: Vec<Value>) -> Response {
    let mut out = String::new();
    for e in events {
        out.push_str("data: ");
        out.push_str(&e.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    // One frame per event, as a real server flushes them.
    let frames: Vec<Result<Bytes, std::io::Error>> = out
        .split_inclusive("\n\n")
        .map(|s| Ok(Bytes::from(s.to_owned())))
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(futures_util::stream::iter(frames)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn models() -> Json<Value> {
    Json(json!({ "object": "list", "data": [{ "id": "mock", "object": "model", "created": 0, "owned_by": "mock" }] }))
}

async fn control(State(state): State<Arc<MockState>>, Json(c): Json<Control>) -> Json<Control> {
    *state.control.lock() = c.clone();
    Json(c)
}

async fn stats(State(state): State<Arc<MockState>>) -> Json<Value> {
    Json(json!({
        "requests": state.requests.load(Ordering::Relaxed),
        "by_model": *state.by_model.lock(),
        "last_body": *state.last_body.lock(),
    }))
}
