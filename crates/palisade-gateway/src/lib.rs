//! Palisade's zero-trust inference gateway, the third enforcement point of the spine.
//!
//! - Native ONNX models from the registry, run with tract behind the KServe Open Inference
//!   Protocol v2 ([`oip`]), requests validated against the model's signature and data
//!   profile ([`onnx`]).
//! - OpenAI-compatible `/v1/chat/completions` (with SSE streaming), `/v1/completions` and
//!   `/v1/embeddings`, proxied to upstreams that hold the provider keys ([`openai`]).
//! - Every route but [`PUBLIC_ROUTES`] authenticates (API keys, OIDC/JWT via
//!   `palisade-auth`) and authorizes per model with Cedar ([`auth`]); rate limits and token
//!   quotas per key, team and model, in memory or in Redis ([`ratelimit`]); body, JSON
//!   depth, header and time limits, load shedding ([`limits`], [`server`]).
//! - Blue-green, canary with automatic analysis and rollback, and shadow traffic
//!   ([`deploy`], operated through [`admin`]); guardrail hook points ([`filter`]);
//!   Prometheus metrics ([`metrics`]) and a JSON access log with a body policy.
//!
//! The registry is reached only through [`source::ModelSource`] and [`audit::AuditSink`],
//! which the binary implements over `palisade-registry`.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod deploy;
pub mod deploy_store;
pub mod error;
pub mod filter;
pub mod limits;
pub mod metrics;
pub mod mock;
pub mod oip;
pub mod onnx;
pub mod openai;
pub mod ratelimit;
pub mod redis_conn;
pub mod server;
pub mod source;
pub mod trace;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

use crate::audit::{AuditRecord, AuditSink, Auditor};
use crate::auth::GatewayAuth;
use crate::config::{BodyLog, GatewayConfig};
use crate::deploy::Deployments;
use crate::deploy_store::{DeployStore, MemoryDeployStore, RedisDeployStore};
use crate::error::{GatewayError, Kind, Wire};
use crate::filter::Filter;
use crate::limits::Shedder;
use crate::metrics::Metrics;
use crate::ratelimit::{Limiter, MemoryLimiter, RateLimits, RedisLimiter};
use crate::redis_conn::RedisConn;
use crate::source::ModelSource;
use crate::upstream::{Clients, Upstream};

pub use config::ConfigError;

/// Routes that answer without credentials (liveness and readiness probes); everything
/// else authenticates first. A test calls every other route anonymously and expects 401.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[("GET", "/v2/health/live"), ("GET", "/v2/health/ready")];

/// The authenticated caller, put on the request by the authentication layer, with the
/// raw credential's cache key for authorization decisions.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<palisade_auth::Principal>,
    /// The credential's cache key.
    key: [u8; 32],
    /// The request's span, when traces are exported (passed on to upstreams).
    pub trace: Option<trace::SpanContext>,
}

/// The authenticated principal's id, for the access log.
#[derive(Clone, Debug)]
struct Who(String);

/// What the access log and metrics learn about a request from its handler.
#[derive(Clone, Debug, Default)]
pub struct Served {
    pub model: Option<String>,
    pub backend: Option<String>,
    pub tokens: Option<u64>,
    /// The request body, when the model's body policy keeps something of it.
    pub body: Option<bytes::Bytes>,
    pub body_log: Option<BodyLog>,
}

pub struct Gateway {
    pub config: GatewayConfig,
    pub auth: GatewayAuth,
    pub limits: RateLimits,
    pub deployments: Arc<Deployments>,
    pub metrics: Arc<Metrics>,
    pub auditor: Arc<Auditor>,
    /// Filters for models without their own guard settings.
    pub filters: Vec<Arc<dyn Filter>>,
    /// Filters of models with `guard` overrides.
    model_filters: HashMap<String, Vec<Arc<dyn Filter>>>,
    /// Detectors for the `redacted` body policy.
    pub redactor: Option<Arc<palisade_guard::Guard>>,
    /// Upstream connection pools, one per server thread.
    pub clients: Clients,
    pub shedder: Shedder,
    shadow_slots: Arc<tokio::sync::Semaphore>,
    /// Set while the gateway refuses new work (shutting down).
    draining: std::sync::atomic::AtomicBool,
    /// When a rate-limit store failure was last logged (Unix seconds).
    limiter_logged: std::sync::atomic::AtomicU64,
    /// The OpenTelemetry span exporter (`[traces]`), when configured.
    pub tracer: Option<Arc<trace::Tracer>>,
    /// Ready-made JSON access-log lines go here when set ([`Gateway::set_access_sink`]).
    access_sink: std::sync::OnceLock<AccessSink>,
    /// Where token settlement and shadow calls run.
    pub(crate) background: server::Background,
    /// SSE relays still running (they outlive their handler).
    pub(crate) streams: Arc<OpenTasks>,
}

/// A count of running tasks that shutdown can wait for.
#[derive(Default)]
pub(crate) struct OpenTasks {
    n: std::sync::atomic::AtomicUsize,
    zero: tokio::sync::Notify,
}

/// Held by a counted task; dropping it counts the task out.
pub(crate) struct OpenTask(Arc<OpenTasks>);

impl OpenTasks {
    pub(crate) fn enter(self: &Arc<Self>) -> OpenTask {
        self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OpenTask(self.clone())
    }

    fn open(&self) -> usize {
        self.n.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until none runs, for at most `limit`; whether none does.
    async fn none_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open() == 0;
            }
        }
    }
}

impl Drop for OpenTask {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

/// What [`Gateway::new`] needs besides the configuration.
pub struct Parts {
    pub authenticator: palisade_auth::Authenticator,
    pub policy: Arc<palisade_auth::Policy>,
    pub source: Option<Arc<dyn ModelSource>>,
    pub audit: Arc<dyn AuditSink>,
    /// The guardrails (`[guard]`); `None` turns the guard filter off for every model.
    pub guard: Option<palisade_guard::GuardConfig>,
}

impl Gateway {
    /// Builds the gateway (needs a Tokio runtime: the audit writer starts here). ONNX
    /// backends are loaded by [`Gateway::start`].
    pub fn new(config: GatewayConfig, parts: Parts) -> Result<Arc<Gateway>, ConfigError> {
        config.validate()?;
        let mut upstreams = HashMap::new();
        for u in &config.upstreams {
            upstreams.insert(u.name.clone(), Arc::new(Upstream::from_config(u).map_err(ConfigError)?));
        }
        let metrics = Arc::new(Metrics::new());
        let auditor = Auditor::spawn(parts.audit);
        let redis = match &config.redis_url {
            Some(url) => Some(Arc::new(RedisConn::new(url).map_err(ConfigError)?)),
            None => None,
        };
        let (store, deploy_store): (Arc<dyn Limiter>, Arc<dyn DeployStore>) = match &redis {
            Some(conn) => (
                Arc::new(RedisLimiter::with_connection(conn.clone())),
                Arc::new(RedisDeployStore::new(conn.clone(), &config.redis_prefix)),
            ),
            None => (
                Arc::new(MemoryLimiter::default()),
                Arc::new(MemoryDeployStore::default()),
            ),
        };
        let deployments = Deployments::new(
            &config.models,
            &upstreams,
            parts.source,
            auditor.clone(),
            metrics.clone(),
            deploy_store,
            Duration::from_millis(config.deploy_sync_ms),
        )
        .map_err(ConfigError)?;
        let limits = RateLimits::with_prefix(
            config.rate_limits.clone(),
            store,
            config.rate_limit_failure,
            &config.redis_prefix,
        );
        let clients = Clients::new(Duration::from_secs(config.limits.upstream_connect_secs)).map_err(ConfigError)?;
        let build = |c: &palisade_guard::GuardConfig| -> Result<Arc<palisade_guard::Guard>, ConfigError> {
            palisade_guard::Guard::from_config(c)
                .map(Arc::new)
                .map_err(|e| ConfigError(format!("guard: {e}")))
        };
        let mut redactor = None;
        let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
        let mut model_filters = HashMap::new();
        if let Some(base) = &parts.guard {
            let g = build(base)?;
            filters.push(Arc::new(filter::GuardFilter::new(g.clone())));
            redactor = Some(g);
            for m in &config.models {
                if let Some(c) = m.guard.apply(base) {
                    let g = build(&c).map_err(|e| ConfigError(format!("model `{}`: {}", m.name, e.0)))?;
                    let own: Vec<Arc<dyn Filter>> = vec![Arc::new(filter::GuardFilter::new(g))];
                    model_filters.insert(m.name.clone(), own);
                }
            }
        }
        let tracer = trace::Tracer::spawn(&config.traces, clients.get().clone());
        Ok(Arc::new(Gateway {
            auth: GatewayAuth::new(
                parts.authenticator,
                parts.policy,
                Duration::from_secs(config.auth_cache_secs),
            ),
            limits,
            deployments: Arc::new(deployments),
            metrics,
            auditor,
            filters,
            model_filters,
            redactor,
            clients,
            shedder: Shedder::new(config.limits.max_concurrency),
            shadow_slots: Arc::new(tokio::sync::Semaphore::new(64)),
            draining: std::sync::atomic::AtomicBool::new(false),
            limiter_logged: std::sync::atomic::AtomicU64::new(0),
            tracer,
            access_sink: std::sync::OnceLock::new(),
            background: server::Background::capture(),
            streams: Arc::default(),
            config,
        }))
    }

    /// Loads every ONNX backend and the shared deployment state, then keeps following
    /// registry aliases (and, with Redis, the other replicas' deployment changes) in the
    /// background.
    pub async fn start(self: &Arc<Self>) {
        self.deployments.refresh().await;
        if self.deployments.shared() {
            self.deployments.sync().await;
            let me = Arc::downgrade(self);
            let every = Duration::from_millis(self.config.deploy_sync_ms);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(gw) = me.upgrade() else { return };
                    gw.deployments.sync().await;
                }
            });
        }
        let every = self.config.model_refresh_secs;
        if every > 0 {
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(gw) = me.upgrade() else { return };
                    gw.deployments.refresh().await;
                }
            });
        }
    }

    /// The filters a model's requests go through.
    pub fn filters_for(&self, model: &str) -> &[Arc<dyn Filter>] {
        self.model_filters.get(model).map_or(&self.filters, Vec::as_slice)
    }

    /// Stops admitting requests (readiness turns false) before a shutdown.
    pub fn drain(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// After the server stopped serving: waits (up to `limit`) for streams still being
    /// relayed, then until queued refusals reach the audit log — so that a final
    /// checkpoint taken next covers what the last requests recorded.
    pub async fn quiesce(&self, limit: Duration) {
        if !self.streams.none_within(limit).await {
            tracing::warn!(
                open = self.streams.open(),
                "streams still relaying at shutdown; what they record may land after the final checkpoint"
            );
        }
        self.auditor.flush().await;
    }

    /// SSE streams being relayed now.
    pub fn open_streams(&self) -> usize {
        self.streams.open()
    }

    fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Authorizes `action` on `model` (or the gateway as a whole); a refusal is counted
    /// and audited.
    pub fn require(
        &self,
        caller: &Caller,
        action: &'static str,
        model: Option<&str>,
        wire: Wire,
    ) -> Result<(), GatewayError> {
        let d = self.auth.authorize(Some(&caller.key), &caller.principal, action, model);
        if d.allowed {
            return Ok(());
        }
        self.metrics.deny("forbidden");
        self.auditor.refusal(AuditRecord::new(
            &caller.principal.id,
            action,
            model.unwrap_or("gateway"),
            "denied",
            json!({ "reason": "not permitted", "policies": d.policies, "errors": d.errors }),
        ));
        let what = model.map_or_else(|| "the gateway".to_owned(), |m| format!("`{m}`"));
        Err(GatewayError::new(
            Kind::Forbidden,
            format!("{} may not {action} {what}", caller.principal.subject),
        )
        .wire(wire))
    }

    /// Checks the rate limits for a request that may use `tokens` tokens. A refusal is
    /// counted and audited; a store failure is handled as configured (fail open or
    /// closed), counted, and logged at most once every 10 s.
    pub async fn admit(&self, caller: &Caller, model: &str, tokens: u64) -> Result<ratelimit::Admission, GatewayError> {
        let failure = match self.limits.admit(&caller.principal, model, tokens).await {
            Ok(a) => return Ok(a),
            Err(f) => f,
        };
        let store_down = |mode: &'static str, e: &dyn std::fmt::Display| {
            self.metrics.limiter_errors.get_or_create(&metrics::Mode { mode }).inc();
            let now = palisade_core::time::now_secs();
            let last = self.limiter_logged.load(std::sync::atomic::Ordering::Relaxed);
            if now >= last + 10
                && self
                    .limiter_logged
                    .compare_exchange(
                        last,
                        now,
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                    )
                    .is_ok()
            {
                if mode == "open" {
                    tracing::warn!(error = %e, store = self.limits.store_name(), "rate-limit store unavailable: requests admitted without limits (fail open)");
                } else {
                    tracing::error!(error = %e, store = self.limits.store_name(), "rate-limit store unavailable: requests refused (fail closed)");
                }
            }
        };
        match failure {
            ratelimit::Failure::Open(e) => {
                store_down("open", &e);
                Ok(ratelimit::Admission::default())
            }
            ratelimit::Failure::Closed(e) if e.kind == Kind::RateLimited => {
                let rule = e
                    .headers
                    .iter()
                    .find(|(k, _)| *k == "x-ratelimit-rule")
                    .map(|(_, v)| v.clone());
                self.metrics
                    .rate_limited
                    .get_or_create(&metrics::Rule {
                        rule: rule.clone().unwrap_or_default(),
                    })
                    .inc();
                self.refused(caller, "infer", model, "rate_limited", json!({ "rule": rule }));
                Err(e)
            }
            ratelimit::Failure::Closed(e) => {
                store_down("closed", &e.message);
                Err(e)
            }
        }
    }

    /// A guardrail or rate-limit refusal, counted and audited.
    pub fn refused(&self, caller: &Caller, action: &str, model: &str, reason: &'static str, detail: serde_json::Value) {
        self.metrics.deny(reason);
        self.auditor.refusal(AuditRecord::new(
            &caller.principal.id,
            action,
            model,
            "denied",
            json!({ "reason": reason, "detail": detail }),
        ));
    }
}

/// The gateway's routes, with authentication, load shedding, body timeouts and the
/// access log applied (outermost first: access log and metrics, shedding, body idle
/// timeout, authentication, then the route).
pub fn router(gw: Arc<Gateway>) -> Router {
    let routes = Router::new()
        .merge(oip::routes())
        .merge(openai::routes())
        .merge(admin::routes());
    routes
        .route_layer(axum::middleware::from_fn_with_state(gw.clone(), authenticate))
        .layer(tower_http_body_idle(&gw))
        .layer(axum::middleware::from_fn_with_state(gw.clone(), observe))
        .with_state(gw)
}

fn tower_http_body_idle(gw: &Gateway) -> tower_http::timeout::RequestBodyTimeoutLayer {
    tower_http::timeout::RequestBodyTimeoutLayer::new(Duration::from_secs(gw.config.limits.body_idle_secs))
}

fn is_public(method: &str, path: Option<&str>) -> bool {
    path.is_some_and(|p| PUBLIC_ROUTES.iter().any(|(m, r)| *m == method && *r == p))
}

/// Authenticates every request that is not public, before any extractor reads its body.
async fn authenticate(
    State(gw): State<Arc<Gateway>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.method().as_str(), matched.as_ref().map(|m| m.as_str())) {
        return next.run(req).await;
    }
    let wire = Wire::for_path(req.uri().path());
    let result = match req.headers().get(header::AUTHORIZATION) {
        Some(h) => {
            let key = GatewayAuth::key(h.as_bytes());
            gw.auth.authenticate_keyed(h.as_bytes(), key).await.map(|p| (p, key))
        }
        None => Err(palisade_auth::AuthError::Missing),
    };
    match result {
        Ok((principal, key)) => {
            let who = Who(principal.id.clone());
            let trace = req.extensions().get::<trace::SpanContext>().copied();
            req.extensions_mut().insert(Caller { principal, key, trace });
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(who);
            resp
        }
        Err(e) => {
            let kind = if e.is_internal() {
                tracing::error!(error = %e, "credential store unavailable");
                Kind::Unavailable
            } else {
                Kind::Unauthenticated
            };
            gw.metrics.deny("unauthenticated");
            let target = clip(req.uri().path(), 256);
            gw.auditor.refusal(AuditRecord::new(
                "anonymous",
                "authenticate",
                target,
                "denied",
                json!({ "reason": e.to_string() }),
            ));
            let mut resp = GatewayError::new(kind, e.to_string()).wire(wire).into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// The first `max` bytes of `s`, cut back to a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn api_of(path: &str) -> &'static str {
    if path.starts_with("/v1/") {
        "openai"
    } else if path.starts_with("/v2") {
        "oip"
    } else if path.starts_with("/gateway/") {
        "admin"
    } else if path == "/metrics" {
        "metrics"
    } else {
        "other"
    }
}

/// Load shedding, request ids, metrics and the access log around every request.
async fn observe(
    State(gw): State<Arc<Gateway>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let started_at = std::time::SystemTime::now();
    let method = req.method().clone();
    let path = clip(req.uri().path(), 256).to_owned();
    let route = matched.as_ref().map(|m| m.as_str().to_owned());
    let public = is_public(method.as_str(), route.as_deref());
    let api = api_of(&path);
    let request_id = format!("{:016x}", fastrand::u64(..));
    let peer = req.extensions().get::<server::Peer>().cloned();
    let _permit = if public {
        None
    } else {
        match gw.shedder.try_enter() {
            Some(p) if !gw.is_draining() => Some(p),
            _ => {
                gw.metrics.deny("overloaded");
                return GatewayError::new(Kind::Overloaded, "the gateway is at capacity; retry shortly")
                    .wire(Wire::for_path(&path))
                    .retry_after(1)
                    .into_response();
            }
        }
    };
    let span = gw.tracer.as_ref().filter(|_| !public).map(|t| {
        let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
        trace::SpanContext::start(parent, t.config.sample_ratio)
    });
    if let Some(s) = span {
        req.extensions_mut().insert(s);
    }
    gw.metrics.inflight.inc();
    let mut resp = next.run(req).await;
    gw.metrics.inflight.dec();
    let elapsed = start.elapsed();
    let served = resp.extensions_mut().remove::<Served>().unwrap_or_default();
    let who = resp.extensions_mut().remove::<Who>();
    let status = resp.status().as_u16();
    let model = served.model.clone().unwrap_or_default();
    gw.metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            api,
            model: model.clone(),
            backend: served.backend.clone().unwrap_or_default(),
            code: status,
        })
        .inc();
    if served.model.is_some() {
        gw.metrics
            .duration
            .get_or_create(&metrics::ApiModel {
                api,
                model: model.clone(),
            })
            .observe(elapsed.as_secs_f64());
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let (Some(t), Some(ctx)) = (&gw.tracer, span.filter(|s| s.sampled)) {
        let mut attributes = vec![
            ("http.request.method", method.to_string()),
            ("url.path", path.clone()),
            ("palisade.request_id", request_id.clone()),
        ];
        if let Some(r) = &route {
            attributes.push(("http.route", r.clone()));
        }
        if let Some(m) = &served.model {
            attributes.push(("palisade.model", m.clone()));
        }
        if let Some(b) = &served.backend {
            attributes.push(("palisade.backend", b.clone()));
        }
        if let Some(w) = &who {
            attributes.push(("enduser.id", w.0.clone()));
        }
        t.record(trace::SpanRecord {
            ctx,
            name: format!("{} {}", method, route.as_deref().unwrap_or("unmatched")),
            start: started_at,
            end: started_at + elapsed,
            status,
            attributes,
        });
    }
    if gw.config.access_log.enabled && !public {
        access_log(
            &gw,
            &served,
            &Line {
                request_id: &request_id,
                principal: who.as_ref().map(|w| w.0.as_str()),
                method: method.as_str(),
                path: &path,
                status,
                elapsed,
                peer: peer.as_ref(),
            },
        );
    }
    resp
}

struct Line<'a> {
    request_id: &'a str,
    principal: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
    elapsed: Duration,
    peer: Option<&'a server::Peer>,
}

/// Where access-log lines go when not through `tracing`: a function that takes one
/// complete JSON line (newline included). See [`Gateway::set_access_sink`].
pub type AccessSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// One access-log line in the shape `tracing-subscriber`'s JSON format gives every other
/// log line (`timestamp`, `level`, `fields`, `target`), so that consumers see one schema
/// whichever path wrote it.
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    timestamp: String,
    level: &'static str,
    fields: AccessFields<'a>,
    target: &'static str,
}

#[derive(serde::Serialize)]
struct AccessFields<'a> {
    message: &'static str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cert: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

/// RFC 3339 UTC with microseconds, as `tracing-subscriber` writes its timestamps.
fn timestamp_micros(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole = palisade_core::time::rfc3339(d.as_secs());
    let date_time = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{date_time}.{:06}Z", d.subsec_micros())
}

impl Gateway {
    /// Sends access-log lines to `sink` as ready-made JSON instead of through `tracing`
    /// (whose JSON formatter costs several times more per line). Set once, by a server
    /// that logs JSON and has the `palisade::access` target enabled; later calls are
    /// ignored. Returns whether this call set it.
    pub fn set_access_sink(&self, sink: AccessSink) -> bool {
        self.access_sink.set(sink).is_ok()
    }
}

fn access_log(gw: &Gateway, served: &Served, line: &Line<'_>) {
    let policy = served.body_log.unwrap_or(gw.config.access_log.body);
    let mut body_sha256 = None;
    let mut body_size = None;
    let mut body_text = None;
    if let Some(b) = &served.body {
        body_size = Some(b.len());
        match policy {
            BodyLog::None => body_size = None,
            BodyLog::Hash => {
                use sha2::Digest as _;
                body_sha256 = Some(hex::encode(sha2::Sha256::digest(b)));
            }
            BodyLog::Redacted => {
                let text = String::from_utf8_lossy(&b[..b.len().min(64 << 10)]).into_owned();
                body_text = Some(match &gw.redactor {
                    Some(g) => palisade_guard::redact::Redactor {
                        mode: palisade_guard::RedactionMode::Mask,
                        key: &[],
                        hex_digits: 8,
                    }
                    .apply(&text, &g.sensitive(&text), &mut palisade_guard::Vault::new()),
                    None => "[redaction unavailable]".to_owned(),
                });
            }
            BodyLog::Full => body_text = Some(String::from_utf8_lossy(&b[..b.len().min(64 << 10)]).into_owned()),
        }
    }
    if let Some(sink) = gw.access_sink.get() {
        let record = AccessLine {
            timestamp: timestamp_micros(std::time::SystemTime::now()),
            level: "INFO",
            fields: AccessFields {
                message: "request",
                request_id: line.request_id,
                principal: line.principal,
                method: line.method,
                path: line.path,
                status: line.status,
                duration_ms: line.elapsed.as_secs_f64() * 1000.0,
                peer: line.peer.map(|p| p.addr.to_string()),
                client_cert: line.peer.and_then(|p| p.cert_sha256.as_deref()),
                model: served.model.as_deref(),
                backend: served.backend.as_deref(),
                tokens: served.tokens,
                body_sha256,
                body_size,
                body: body_text,
            },
            target: "palisade::access",
        };
        let mut buf = Vec::with_capacity(512);
        if serde_json::to_writer(&mut buf, &record).is_ok() {
            buf.push(b'\n');
            sink(&buf);
        }
        return;
    }
    tracing::info!(
        target: "palisade::access",
        request_id = line.request_id,
        principal = line.principal,
        method = line.method,
        path = line.path,
        status = line.status,
        duration_ms = line.elapsed.as_secs_f64() * 1000.0,
        peer = line.peer.map(|p| p.addr.to_string()),
        client_cert = line.peer.and_then(|p| p.cert_sha256.clone()),
        model = served.model.as_deref(),
        backend = served.backend.as_deref(),
        tokens = served.tokens,
        body_sha256,
        body_size,
        body = body_text,
        "request"
    );
}

#[cfg(test)]
mod open_tasks_tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_open_tasks_and_no_longer_than_its_limit() {
        let open = Arc::new(OpenTasks::default());
        assert!(open.none_within(Duration::from_millis(1)).await, "nothing open");
        let a = open.enter();
        let b = open.enter();
        assert!(!open.none_within(Duration::from_millis(30)).await, "bounded wait");
        let waiter = {
            let open = open.clone();
            tokio::spawn(async move { open.none_within(Duration::from_secs(10)).await })
        };
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one task is still open");
        drop(b);
        let done = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(done, Ok(Ok(true))), "the last task out wakes the waiter");
        assert_eq!(open.open(), 0);
    }
}
