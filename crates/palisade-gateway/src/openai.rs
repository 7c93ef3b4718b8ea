//! OpenAI-compatible routes — `/v1/chat/completions` (with SSE streaming),
//! `/v1/completions`, `/v1/embeddings` and `/v1/models` — proxied to the upstream of the
//! model's current backend.
//!
//! Per request: authorize `infer` on the model; run the request filters over each user and
//! tool text (block or rewrite); reserve `prompt estimate + max_tokens` against the token
//! limits; send upstream with the gateway's provider key and the backend's model name;
//! run the response filters over the answer (or the stream filters over each delta);
//! settle the token reservation with the upstream's `usage`. Streaming requests ask the
//! upstream for usage (`stream_options.include_usage`) and drop that chunk again when the
//! client did not ask for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::config::ModelKind;
use crate::deploy::{Deployment, Target};
use crate::error::{GatewayError, GwResult, Kind, Wire};
use crate::filter::{self, Action, RequestFilter, RequestInfo, StreamChain};
use crate::metrics::{Detection, ModelBackend, Shadow, Tokens};
use crate::ratelimit::Admission;
use crate::{Caller, Gateway, Served};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
    Embeddings,
}

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::Chat => "/chat/completions",
            Api::Completions => "/completions",
            Api::Embeddings => "/embeddings",
        }
    }
}

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
}

async fn chat(State(gw): State<Arc<Gateway>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    handle(gw, c, Api::Chat, body).await
}
async fn completions(State(gw): State<Arc<Gateway>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    handle(gw, c, Api::Completions, body).await
}
async fn embeddings(State(gw): State<Arc<Gateway>>, Extension(c): Extension<Caller>, body: Body) -> Response {
    handle(gw, c, Api::Embeddings, body).await
}

/// The LLM models this caller may call.
async fn list_models(State(gw): State<Arc<Gateway>>, Extension(caller): Extension<Caller>) -> Response {
    let mut data: Vec<Value> = gw
        .deployments
        .all()
        .filter(|d| d.kind() == ModelKind::Openai)
        .filter(|d| {
            gw.auth
                .authorize(Some(&caller.key), &caller.principal, "infer", Some(&d.name))
                .allowed
        })
        .map(|d| json!({ "id": d.name, "object": "model", "created": 0, "owned_by": "palisade" }))
        .collect();
    data.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Json(json!({ "object": "list", "data": data })).into_response()
}

async fn handle(gw: Arc<Gateway>, caller: Caller, api: Api, body: Body) -> Response {
    let mut served = Served::default();
    let mut resp = match proxy(&gw, &caller, api, body, &mut served).await {
        Ok(r) => r,
        Err(e) => e.wire(Wire::OpenAi).into_response(),
    };
    resp.extensions_mut().insert(served);
    resp
}

/// Where one checked text of a request sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PromptAt {
    /// `messages[i].content`, a string.
    Content(usize),
    /// `messages[i].content[j].text`.
    Part(usize, usize),
    /// The whole `prompt` / `input`, a string.
    Whole(&'static str),
    /// `prompt[i]` / `input[i]`.
    Item(&'static str, usize),
}

impl PromptAt {
    /// The JSON pointer to the text.
    fn pointer(self) -> String {
        match self {
            PromptAt::Content(i) => format!("/messages/{i}/content"),
            PromptAt::Part(i, j) => format!("/messages/{i}/content/{j}/text"),
            PromptAt::Whole(key) => format!("/{key}"),
            PromptAt::Item(key, i) => format!("/{key}/{i}"),
        }
    }
}

/// Calls `f` with each text of a request that the request filters check, in order.
fn each_prompt<'a>(api: Api, body: &'a Map<String, Value>, mut f: impl FnMut(PromptAt, &'a str)) {
    match api {
        Api::Chat => {
            let Some(Value::Array(msgs)) = body.get("messages") else {
                return;
            };
            for (i, m) in msgs.iter().enumerate() {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                // System and developer messages are the operator's; assistant turns
                // were checked on their way out.
                if !matches!(role, "user" | "tool" | "function") {
                    continue;
                }
                match m.get("content") {
                    Some(Value::String(t)) => f(PromptAt::Content(i), t),
                    Some(Value::Array(parts)) => {
                        for (j, p) in parts.iter().enumerate() {
                            if let Some(Value::String(t)) = p.get("text") {
                                f(PromptAt::Part(i, j), t);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Api::Completions | Api::Embeddings => {
            let key = if api == Api::Completions { "prompt" } else { "input" };
            match body.get(key) {
                Some(Value::String(t)) => f(PromptAt::Whole(key), t),
                Some(Value::Array(items)) => {
                    for (i, v) in items.iter().enumerate() {
                        if let Value::String(t) = v {
                            f(PromptAt::Item(key, i), t);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The texts of a request that the request filters check, as JSON pointers into it.
fn prompt_pointers(api: Api, body: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    each_prompt(api, body, |at, _| out.push(at.pointer()));
    out
}

/// Roughly four bytes per token, plus a little per message: what is reserved before the
/// upstream reports the real count.
fn estimate_tokens(texts: usize, bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4) + 4 * texts as u64
}

fn record_findings(gw: &Gateway, phase: &'static str, findings: &[filter::Finding]) {
    for f in findings {
        gw.metrics
            .detections
            .get_or_create(&Detection {
                code: f.code.clone(),
                phase,
            })
            .inc();
    }
}

/// Settles a token reservation once, in the background.
fn settle(gw: &Arc<Gateway>, admission: Admission, used: u64) {
    if admission.reserved_tokens() == 0 {
        return;
    }
    let gw2 = gw.clone();
    gw.background.spawn(async move {
        let gw = gw2;
        if let Err(e) = gw.limits.settle(&admission, used).await {
            tracing::warn!(error = %e, "token reservation not settled");
        }
    });
}

fn usage_total(v: &Value) -> Option<(u64, u64)> {
    usage_counts(v.get("usage")?)
}

/// An answer's `usage` object as (prompt, completion) tokens.
fn usage_counts(u: &Value) -> Option<(u64, u64)> {
    if !u.is_object() {
        return None;
    }
    let prompt = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let completion = u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0);
    let total = u
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(prompt + completion);
    Some((prompt, total.saturating_sub(prompt).max(completion)))
}

async fn proxy(gw: &Arc<Gateway>, caller: &Caller, api: Api, body: Body, served: &mut Served) -> GwResult<Response> {
    let limits = &gw.config.limits;
    let bytes = crate::limits::read_body(body, limits.max_body_bytes, Wire::OpenAi).await?;
    served.body = Some(bytes.clone());
    let mut value = crate::limits::parse_json(&bytes, limits.max_json_depth, Wire::OpenAi)?;
    let Some(obj) = value.as_object_mut() else {
        return Err(GatewayError::invalid("the body must be a JSON object"));
    };
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::invalid("`model` is required"))?
        .to_owned();
    gw.require(caller, "infer", Some(&model), Wire::OpenAi)?;
    let d = gw
        .deployments
        .get(&model)
        .filter(|d| d.kind() == ModelKind::Openai)
        .cloned()
        .ok_or_else(|| GatewayError::new(Kind::NotFound, format!("the model `{model}` does not exist")))?;
    served.model = Some(d.name.clone());
    served.body_log = d.config.body_log;
    let stream = api != Api::Embeddings && obj.get("stream").and_then(Value::as_bool).unwrap_or(false);

    // Request phase.
    let schema = obj
        .get("response_format")
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.pointer("/json_schema/schema"))
        .cloned();
    let mut filters: Vec<Box<dyn RequestFilter>> = if d.config.guard.input || d.config.guard.output {
        let info = RequestInfo {
            model: d.name.clone(),
            principal: caller.principal.id.clone(),
            schema,
        };
        gw.filters_for(&d.name).iter().map(|f| f.begin(&info)).collect()
    } else {
        Vec::new()
    };
    let (mut prompt_count, mut prompt_bytes) = (0usize, 0usize);
    each_prompt(api, obj, |_, text| {
        prompt_count += 1;
        prompt_bytes += text.len();
    });
    // Pointers (and copies of the texts) only when a filter reads them.
    let pointers = if d.config.guard.input && !filters.is_empty() {
        prompt_pointers(api, obj)
    } else {
        Vec::new()
    };
    for p in &pointers {
        let Some(Value::String(text)) = value.pointer(p).cloned() else {
            continue;
        };
        let o = filter::run_request(&mut filters, &text);
        record_findings(gw, "request", &o.findings);
        match o.action {
            Action::Allow | Action::Flag => {}
            Action::Rewrite(t) => {
                if let Some(slot) = value.pointer_mut(p) {
                    *slot = Value::String(t);
                }
            }
            Action::Block => {
                let codes: Vec<&str> = o.findings.iter().map(|f| f.code.as_str()).collect();
                gw.refused(
                    caller,
                    "infer",
                    &d.name,
                    "guardrail",
                    json!({ "phase": "request", "findings": o.findings }),
                );
                return Err(GatewayError::new(
                    Kind::Blocked,
                    format!(
                        "the request was blocked by Palisade's guardrails ({})",
                        codes.join(", ")
                    ),
                ));
            }
        }
    }
    let Some(obj) = value.as_object_mut() else {
        return Err(GatewayError::invalid("the body must be a JSON object"));
    };

    // Token reservation.
    let max_tokens = match api {
        Api::Embeddings => 0,
        _ => {
            let asked = obj
                .get("max_completion_tokens")
                .or_else(|| obj.get("max_tokens"))
                .filter(|v| !v.is_null());
            match asked {
                None => limits.default_max_tokens,
                Some(v) => match v.as_u64() {
                    Some(n) if n <= limits.max_tokens => n,
                    _ => {
                        return Err(GatewayError::invalid(format!(
                            "max_tokens must be an integer of at most {}",
                            limits.max_tokens
                        )))
                    }
                },
            }
        }
    };
    let estimate = estimate_tokens(prompt_count, prompt_bytes);
    let admission = gw.admit(caller, &d.name, estimate + max_tokens).await?;

    // Upstream.
    let route = d.route();
    let backend = &d.backends[route.backend];
    served.backend = Some(backend.name.clone());
    let Target::OpenAi {
        upstream,
        model: upstream_model,
    } = &backend.target
    else {
        settle(gw, admission, 0);
        return Err(GatewayError::internal("an openai model has a non-openai backend"));
    };
    obj.insert("model".into(), Value::String(upstream_model.clone()));
    let client_wants_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if stream && !client_wants_usage {
        let opts = obj.entry("stream_options").or_insert_with(|| json!({}));
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let shadow_body = route.shadow.and_then(|s| {
        let Target::OpenAi { model: m, .. } = &d.backends[s].target else {
            return None;
        };
        let mut copy = obj.clone();
        copy.insert("model".into(), Value::String(m.clone()));
        copy.insert("stream".into(), Value::Bool(false));
        copy.remove("stream_options");
        Some((s, copy))
    });
    let upstream_body = Bytes::from(serde_json::to_vec(&value).map_err(GatewayError::internal)?);
    let started = Instant::now();
    let timeout = Duration::from_secs(limits.request_timeout_secs);
    let resp = upstream
        .post(
            &gw.clients,
            api.path(),
            upstream_body,
            stream,
            timeout,
            caller.trace.map(|t| t.traceparent()).as_deref(),
        )
        .await;
    let head_latency = started.elapsed();
    let observe = |ok: bool| {
        backend.record(ok, head_latency);
        gw.metrics
            .upstream_duration
            .get_or_create(&ModelBackend {
                model: d.name.clone(),
                backend: backend.name.clone(),
            })
            .observe(head_latency.as_secs_f64());
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            observe(false);
            settle(gw, admission, 0);
            tracing::warn!(model = %d.name, backend = %backend.name, error = %e, "upstream call failed");
            let kind = if matches!(e, crate::upstream::UpstreamError::Timeout(_)) {
                Kind::UpstreamTimeout
            } else {
                Kind::Upstream
            };
            return Err(GatewayError::new(kind, e.to_string()));
        }
    };
    let status = resp.status();
    if !status.is_success() {
        observe(!status.is_server_error());
        settle(gw, admission, 0);
        return upstream_error(gw, &d, status, resp.into_body()).await;
    }
    observe(true);
    let needs_inspection = !filters.is_empty() && d.config.guard.output;
    if stream {
        return Ok(stream_response(
            gw,
            &d,
            resp.into_body(),
            StreamPlan {
                api,
                filters: if needs_inspection { filters } else { Vec::new() },
                admission,
                estimate,
                client_wants_usage,
                shadow: shadow_body.map(|(s, b)| (s, b, upstream.clone())),
            },
        ));
    }
    let raw = crate::upstream::read_body(
        resp.into_body(),
        limits.max_response_bytes,
        Duration::from_secs(limits.stream_idle_secs),
    )
    .await
    .map_err(|e| {
        backend.record(false, started.elapsed());
        GatewayError::new(Kind::Upstream, e)
    });
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            settle(gw, admission, 0);
            return Err(e);
        }
    };
    // The whole answer is parsed only when something reads it (response filters, the
    // shadow comparison); otherwise only `usage` is taken out of it (still checking that
    // it is JSON) and the upstream's bytes are passed on as they are.
    let whole = needs_inspection || shadow_body.is_some();
    // Every OpenAI answer is an object; serde would also read a struct from an array.
    let object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed = if !object {
        None
    } else if whole {
        serde_json::from_slice::<Value>(&raw)
            .ok()
            .map(|v| (v.get("usage").cloned(), v))
    } else {
        serde_json::from_slice::<UsageOf>(&raw)
            .map(|u| (u.usage, Value::Null))
            .or_else(|_| serde_json::from_slice::<Value>(&raw).map(|v| (v.get("usage").cloned(), Value::Null)))
            .ok()
    };
    let (usage, mut answer) = match parsed {
        Some(v) => v,
        None => {
            settle(gw, admission, estimate);
            return Err(GatewayError::new(
                Kind::Upstream,
                "the upstream's answer is not a JSON object",
            ));
        }
    };
    let (prompt, completion) = usage.as_ref().and_then(usage_counts).unwrap_or((estimate, 0));
    served.tokens = Some(prompt + completion);
    gw.metrics
        .tokens
        .get_or_create(&Tokens {
            model: d.name.clone(),
            kind: "prompt",
        })
        .inc_by(prompt);
    gw.metrics
        .tokens
        .get_or_create(&Tokens {
            model: d.name.clone(),
            kind: "completion",
        })
        .inc_by(completion);
    settle(gw, admission.clone(), prompt + completion);

    // Response phase.
    let mut changed = false;
    let mut blocked_codes: Vec<String> = Vec::new();
    if needs_inspection {
        let field = match api {
            Api::Chat => Some("/message/content"),
            Api::Completions => Some("/text"),
            Api::Embeddings => None,
        };
        if let (Some(field), Some(Value::Array(choices))) = (field, answer.get_mut("choices")) {
            for choice in choices.iter_mut() {
                let Some(Value::String(text)) = choice.pointer(field).cloned() else {
                    continue;
                };
                let o = filter::run_response(&mut filters, &text);
                record_findings(gw, "response", &o.findings);
                match o.action {
                    Action::Allow | Action::Flag => {}
                    Action::Rewrite(t) => {
                        if let Some(slot) = choice.pointer_mut(field) {
                            *slot = Value::String(t);
                            changed = true;
                        }
                    }
                    Action::Block => {
                        blocked_codes.extend(o.findings.iter().map(|f| f.code.clone()));
                        if let Some(slot) = choice.pointer_mut(field) {
                            *slot = Value::String(format!(
                                "[response withheld by Palisade's guardrails: {}]",
                                o.findings
                                    .iter()
                                    .map(|f| f.code.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        if let Some(c) = choice.as_object_mut() {
                            c.insert("finish_reason".into(), Value::String("content_filter".into()));
                        }
                        changed = true;
                    }
                }
            }
        }
        if !blocked_codes.is_empty() {
            gw.refused(
                caller,
                "infer",
                &d.name,
                "guardrail",
                json!({ "phase": "response", "codes": blocked_codes }),
            );
        }
    }
    if let Some((s, b)) = shadow_body {
        let primary = answer_text(api, &answer);
        spawn_shadow(gw, &d, s, api, b, upstream.clone(), primary);
    }
    let out = if changed {
        Bytes::from(serde_json::to_vec(&answer).map_err(GatewayError::internal)?)
    } else {
        raw
    };
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response();
    add_headers(&mut r, &admission);
    if !blocked_codes.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&format!("blocked {}", blocked_codes.join(","))) {
            r.headers_mut().insert("x-palisade-guard", v);
        }
    }
    Ok(r)
}

/// The one field of an answer the gateway needs when nothing else reads it.
#[derive(serde::Deserialize)]
struct UsageOf {
    #[serde(default)]
    usage: Option<Value>,
}

fn add_headers(r: &mut Response, admission: &Admission) {
    for (k, v) in &admission.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
}

/// An upstream refusal, passed on: the upstream's own error for 4xx (except its
/// authentication errors, which are the gateway's configuration, not the client's), a
/// generic 502 for 5xx.
async fn upstream_error(
    gw: &Gateway,
    d: &Deployment,
    status: StatusCode,
    body: crate::upstream::UpstreamBody,
) -> GwResult<Response> {
    let raw = crate::upstream::read_body(body, 64 << 10, Duration::from_secs(gw.config.limits.stream_idle_secs))
        .await
        .unwrap_or_default();
    tracing::warn!(model = %d.name, %status, body = %String::from_utf8_lossy(&raw[..raw.len().min(512)]), "upstream refused");
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(GatewayError::new(
            Kind::Upstream,
            "the upstream refused the gateway's credentials",
        ));
    }
    if status.is_client_error() && serde_json::from_slice::<Value>(&raw).is_ok_and(|v| v.get("error").is_some()) {
        return Ok((status, [(header::CONTENT_TYPE, "application/json")], raw).into_response());
    }
    Err(GatewayError::new(
        Kind::Upstream,
        format!("the upstream answered {}", status.as_u16()),
    ))
}

fn answer_text(api: Api, answer: &Value) -> String {
    let field = match api {
        Api::Chat => "/message/content",
        Api::Completions => "/text",
        Api::Embeddings => {
            return answer
                .pointer("/data/0/embedding")
                .map(|e| e.to_string())
                .unwrap_or_default()
        }
    };
    answer
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.pointer(field).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\u{1e}")
        })
        .unwrap_or_default()
}

/// Sends the request to the shadow backend and compares its answer with the real one.
fn spawn_shadow(
    gw: &Arc<Gateway>,
    d: &Arc<Deployment>,
    shadow: usize,
    api: Api,
    body: Map<String, Value>,
    fallback: Arc<crate::upstream::Upstream>,
    primary: String,
) {
    let name = d.name.clone();
    let metric = move |result: &'static str| Shadow {
        model: name.clone(),
        result,
    };
    let Ok(permit) = gw.shadow_slots.clone().try_acquire_owned() else {
        gw.metrics.shadow.get_or_create(&metric("skipped")).inc();
        return;
    };
    let upstream = match &d.backends[shadow].target {
        Target::OpenAi { upstream, .. } => upstream.clone(),
        Target::Onnx { .. } => fallback,
    };
    let (gw, d) = (gw.clone(), d.clone());
    let background = gw.background.clone();
    background.spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let limits = &gw.config.limits;
        let body = Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default());
        let result = async {
            let r = upstream
                .post(
                    &gw.clients,
                    api.path(),
                    body,
                    false,
                    Duration::from_secs(limits.request_timeout_secs),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("status {}", r.status()));
            }
            let raw = crate::upstream::read_body(
                r.into_body(),
                limits.max_response_bytes,
                Duration::from_secs(limits.stream_idle_secs),
            )
            .await?;
            serde_json::from_slice::<Value>(&raw).map_err(|e| e.to_string())
        }
        .await;
        d.backends[shadow].record(result.is_ok(), started.elapsed());
        let outcome = match result {
            Ok(v) => {
                let text = answer_text(api, &v);
                if text == primary {
                    "match"
                } else {
                    tracing::info!(model = %d.name, shadow = %d.backends[shadow].name,
                        primary_len = primary.len(), shadow_len = text.len(), "shadow answer differs");
                    "mismatch"
                }
            }
            Err(e) => {
                tracing::warn!(model = %d.name, shadow = %d.backends[shadow].name, error = %e, "shadow request failed");
                "error"
            }
        };
        gw.metrics.shadow.get_or_create(&metric(outcome)).inc();
    });
}

struct StreamPlan {
    api: Api,
    filters: Vec<Box<dyn RequestFilter>>,
    admission: Admission,
    estimate: u64,
    client_wants_usage: bool,
    shadow: Option<(usize, Map<String, Value>, Arc<crate::upstream::Upstream>)>,
}

/// The client's SSE stream: upstream events re-emitted after the stream filters, with
/// the reservation settled at the end (also when the client goes away).
fn stream_response(
    gw: &Arc<Gateway>,
    d: &Arc<Deployment>,
    body: crate::upstream::UpstreamBody,
    plan: StreamPlan,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let headers = plan.admission.headers.clone();
    let (gw2, d2) = (gw.clone(), d.clone());
    let open = gw.streams.enter();
    tokio::spawn(async move {
        let _open = open;
        let mut s = SseRelay::new(gw2.clone(), d2.clone(), plan);
        s.run(body, tx).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    for (k, v) in &headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}

/// Longest SSE event accepted from an upstream.
const MAX_EVENT: usize = 1 << 20;
/// Most choices (`n`) guarded in one stream.
const MAX_CHOICES: usize = 16;

struct SseRelay {
    gw: Arc<Gateway>,
    d: Arc<Deployment>,
    plan: StreamPlan,
    chains: Vec<Option<StreamChain>>,
    finished: Vec<bool>,
    buf: Vec<u8>,
    usage: Option<(u64, u64)>,
    released_bytes: usize,
    primary: String,
    blocked: bool,
}

enum Step {
    Send(Bytes),
    Done,
}

impl SseRelay {
    fn new(gw: Arc<Gateway>, d: Arc<Deployment>, plan: StreamPlan) -> Self {
        SseRelay {
            gw,
            d,
            plan,
            chains: Vec::new(),
            finished: Vec::new(),
            buf: Vec::new(),
            usage: None,
            released_bytes: 0,
            primary: String::new(),
            blocked: false,
        }
    }

    fn field(&self) -> &'static str {
        match self.plan.api {
            Api::Chat => "/delta/content",
            _ => "/text",
        }
    }

    fn chain(&mut self, i: usize) -> Option<&mut StreamChain> {
        if self.plan.filters.is_empty() || i >= MAX_CHOICES {
            return None;
        }
        while self.chains.len() <= i {
            self.chains.push(Some(StreamChain::new(&mut self.plan.filters)));
            self.finished.push(false);
        }
        self.chains[i].as_mut()
    }

    async fn run(
        &mut self,
        body: crate::upstream::UpstreamBody,
        tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) {
        use http_body_util::BodyExt as _;
        let idle = Duration::from_secs(self.gw.config.limits.stream_idle_secs);
        let mut body = body;
        let mut complete = false;
        'outer: loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    tracing::warn!(model = %self.d.name, "upstream stream stalled; closing it");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::warn!(model = %self.d.name, error = %e, "upstream stream failed");
                    break;
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else { continue };
            self.buf.extend_from_slice(&data);
            while let Some((end, skip)) = find_event_end(&self.buf) {
                let event: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
                match self.event(&event) {
                    Some(Step::Send(b)) => {
                        let client_gone = tx.send(Ok(b)).await.is_err();
                        if client_gone {
                            break 'outer;
                        }
                    }
                    None => {}
                    Some(Step::Done) => {
                        complete = true;
                        break 'outer;
                    }
                }
            }
            if self.buf.len() > MAX_EVENT {
                tracing::warn!(model = %self.d.name, "upstream SSE event too large; closing the stream");
                break;
            }
        }
        // Whatever the filters still hold, then the end of the stream.
        if !self.blocked {
            let tail = self.flush_all();
            for b in tail {
                let _ = tx.send(Ok(b)).await;
            }
        }
        if complete || self.blocked {
            let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        }
        let used = match self.usage {
            Some((p, c)) => {
                let m = &self.gw.metrics;
                m.tokens
                    .get_or_create(&Tokens {
                        model: self.d.name.clone(),
                        kind: "prompt",
                    })
                    .inc_by(p);
                m.tokens
                    .get_or_create(&Tokens {
                        model: self.d.name.clone(),
                        kind: "completion",
                    })
                    .inc_by(c);
                p + c
            }
            None => self.plan.estimate + (self.released_bytes as u64).div_ceil(4),
        };
        settle(&self.gw, std::mem::take(&mut self.plan.admission), used);
        if let Some((s, b, up)) = self.plan.shadow.take() {
            spawn_shadow(
                &self.gw,
                &self.d,
                s,
                self.plan.api,
                b,
                up,
                std::mem::take(&mut self.primary),
            );
        }
    }

    /// One SSE event from upstream → what to send the client.
    fn event(&mut self, raw: &[u8]) -> Option<Step> {
        let text = String::from_utf8_lossy(raw);
        let mut data = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if data.is_empty() {
            return None; // comments and keep-alives
        }
        if data.trim() == "[DONE]" {
            return Some(Step::Done);
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&data) else {
            // Unparseable data could carry an unchecked answer: it is not passed on.
            tracing::warn!(model = %self.d.name, "dropped an upstream SSE event that is not JSON");
            return None;
        };
        if let Some(u) = usage_total(&v) {
            self.usage = Some(u);
        }
        let field = self.field();
        let mut out_chunks: Vec<Bytes> = Vec::new();
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            if choices.is_empty() && !self.plan.client_wants_usage && self.usage.is_some() {
                return None; // the usage chunk we asked for on the client's behalf
            }
            let mut blocked_at = None;
            for (pos, choice) in choices.iter_mut().enumerate() {
                let i = choice.get("index").and_then(Value::as_u64).unwrap_or(pos as u64) as usize;
                let content = choice.pointer(field).and_then(Value::as_str).map(str::to_owned);
                let finishing = choice.get("finish_reason").is_some_and(|f| !f.is_null());
                if let Some(c) = &content {
                    if self.primary.len() < (1 << 20) {
                        self.primary.push_str(c);
                    }
                }
                let Some(chain) = self.chain(i) else {
                    if let Some(c) = &content {
                        self.released_bytes += c.len();
                    }
                    continue;
                };
                let mut released = String::new();
                let mut findings = Vec::new();
                let mut blocked = false;
                if let Some(c) = &content {
                    let o = chain.chunk(c);
                    released.push_str(&o.text);
                    findings.extend(o.findings);
                    blocked = o.blocked;
                }
                if finishing && !blocked {
                    let o = chain.finish();
                    released.push_str(&o.text);
                    findings.extend(o.findings);
                    blocked = o.blocked;
                    if let Some(f) = self.finished.get_mut(i) {
                        *f = true;
                    }
                }
                record_findings(&self.gw, "stream", &findings);
                self.released_bytes += released.len();
                if blocked {
                    blocked_at = Some((pos, findings));
                    break;
                }
                if content.is_some() || !released.is_empty() {
                    set_text(choice, field, released);
                }
            }
            if let Some((pos, findings)) = blocked_at {
                self.blocked = true;
                let codes: Vec<String> = findings.iter().map(|f| f.code.clone()).collect();
                tracing::warn!(model = %self.d.name, codes = ?codes, "stream blocked by the guardrails");
                self.gw.metrics.deny("guardrail");
                self.gw.auditor.refusal(crate::audit::AuditRecord::new(
                    "palisade/gateway",
                    "infer",
                    &self.d.name,
                    "denied",
                    json!({ "reason": "guardrail", "phase": "stream", "codes": codes }),
                ));
                if let Some(choice) = choices.get_mut(pos) {
                    set_text(choice, field, String::new());
                    if let Some(c) = choice.as_object_mut() {
                        c.insert("finish_reason".into(), Value::String("content_filter".into()));
                    }
                }
                let keep = choices.get(pos).cloned();
                choices.clear();
                choices.extend(keep);
                out_chunks.push(sse(&v));
                return Some(Step::Send(join(out_chunks)));
            }
        }
        out_chunks.push(sse(&v));
        Some(Step::Send(join(out_chunks)))
    }

    /// Releases what each unfinished choice's filters hold, as one chunk per choice.
    fn flush_all(&mut self) -> Vec<Bytes> {
        let field = self.field();
        let api = self.plan.api;
        let mut out = Vec::new();
        for i in 0..self.chains.len() {
            if self.finished.get(i).copied().unwrap_or(true) {
                continue;
            }
            let Some(chain) = self.chains[i].as_mut() else { continue };
            let o = chain.finish();
            record_findings(&self.gw, "stream", &o.findings);
            if o.blocked || o.text.is_empty() {
                continue;
            }
            self.released_bytes += o.text.len();
            let mut choice = json!({ "index": i });
            set_text(&mut choice, field, o.text);
            let object = if api == Api::Chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            out.push(sse(&json!({ "object": object, "choices": [choice] })));
        }
        out
    }
}

fn set_text(choice: &mut Value, field: &str, text: String) {
    if let Some(slot) = choice.pointer_mut(field) {
        *slot = Value::String(text);
    } else if field == "/delta/content" {
        if let Some(c) = choice.as_object_mut() {
            let delta = c.entry("delta").or_insert_with(|| json!({}));
            if let Some(d) = delta.as_object_mut() {
                d.insert("content".into(), Value::String(text));
            }
        }
    } else if let Some(c) = choice.as_object_mut() {
        c.insert("text".into(), Value::String(text));
    }
}

fn sse(v: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&serde_json::to_vec(v).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn join(chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Bytes::from(out)
}

/// The end of the first SSE event in `buf`: `(length, separator length)`.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\r' && buf.get(i + 1..i + 4) == Some(b"\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_and_tool_texts_are_checked() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "tool", "content": "result"}
            ]
        });
        let p = prompt_pointers(Api::Chat, body.as_object().unwrap());
        assert_eq!(
            p,
            [
                "/messages/1/content",
                "/messages/3/content/0/text",
                "/messages/4/content"
            ]
        );
        let e = json!({"model": "m", "input": ["a", 1, "b"]});
        assert_eq!(
            prompt_pointers(Api::Embeddings, e.as_object().unwrap()),
            ["/input/0", "/input/2"]
        );
        let c = json!({"model": "m", "prompt": "x"});
        assert_eq!(prompt_pointers(Api::Completions, c.as_object().unwrap()), ["/prompt"]);
        // The texts themselves, for the token estimate, in the same order.
        let mut seen = Vec::new();
        each_prompt(Api::Chat, body.as_object().unwrap(), |at, t| seen.push((at, t)));
        assert_eq!(
            seen,
            [
                (PromptAt::Content(1), "hello"),
                (PromptAt::Part(3, 0), "part"),
                (PromptAt::Content(4), "result")
            ]
        );
        let mut seen = Vec::new();
        each_prompt(Api::Embeddings, e.as_object().unwrap(), |at, t| seen.push((at, t)));
        assert_eq!(
            seen,
            [(PromptAt::Item("input", 0), "a"), (PromptAt::Item("input", 2), "b")]
        );
    }

    #[test]
    fn sse_events_split_on_blank_lines_of_either_style() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: a\r\n\r\nx"), Some((7, 4)));
        assert_eq!(find_event_end(b"data: a\n"), None);
    }

    #[test]
    fn usage_is_read_from_either_total_or_parts() {
        assert_eq!(
            usage_total(&json!({"usage": {"prompt_tokens": 3, "completion_tokens": 5}})),
            Some((3, 5))
        );
        assert_eq!(
            usage_total(&json!({"usage": {"prompt_tokens": 3, "total_tokens": 10}})),
            Some((3, 7))
        );
        assert_eq!(usage_total(&json!({"choices": []})), None);
    }
}
