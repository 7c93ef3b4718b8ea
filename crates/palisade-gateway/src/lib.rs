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
/// access log applied (in that order: access log and metrics, shedding,
/// authentication, the body's idle timeout, then the route). One middleware does all
/// of it: each layer would cost every request a boxed future and a clone of the route.
pub fn router(gw: Arc<Gateway>) -> Router {
    let routes = Router::new()
        .merge(oip::routes())
        .merge(openai::routes())
        .merge(admin::routes());
    routes
        .layer(axum::middleware::from_fn_with_state(gw.clone(), observe))
        .with_state(gw)
}

fn is_public(method: &str, path: Option<&str>) -> bool {
    path.is_some_and(|p| PUBLIC_ROUTES.iter().any(|(m, r)| *m == method && *r == p))
}

/// Authenticates a request to a route that is not public, before any extractor reads its
/// body: the caller goes on the request; a refusal is the response to send.
async fn authenticate(
    gw: &Gateway,
    req: &mut Request,
    trace: Option<trace::SpanContext>,
) -> Result<Arc<palisade_auth::Principal>, Response> {
    let result = match req.headers().get(header::AUTHORIZATION) {
        Some(h) => {
            let key = GatewayAuth::key(h.as_bytes());
            gw.auth.authenticate_keyed(h.as_bytes(), key).await.map(|p| (p, key))
        }
        None => Err(palisade_auth::AuthError::Missing),
    };
    match result {
        Ok((principal, key)) => {
            req.extensions_mut().insert(Caller {
                principal: principal.clone(),
                key,
                trace,
            });
            Ok(principal)
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
            let mut resp = GatewayError::new(kind, e.to_string())
                .wire(Wire::for_path(req.uri().path()))
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(resp)
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

/// Made once: a name given as a string is parsed and checked on every insert.
const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// A random request id: 16 lowercase hex digits, written into `buf`.
fn request_id(buf: &mut [u8; 16]) -> &str {
    let _ = hex::encode_to_slice(fastrand::u64(..).to_be_bytes(), buf);
    std::str::from_utf8(buf).unwrap_or("0000000000000000")
}

/// Load shedding, authentication (matched routes that are not public), request ids,
/// metrics and the access log around every request.
async fn observe(State(gw): State<Arc<Gateway>>, matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let started_at = std::time::SystemTime::now();
    let method = req.method().clone();
    // A clone of the URI shares its bytes (no copy of the path).
    let uri = req.uri().clone();
    let path = clip(uri.path(), 256);
    let route = matched.as_ref().map(MatchedPath::as_str);
    let public = is_public(method.as_str(), route);
    let api = api_of(path);
    let mut id_buf = [0u8; 16];
    let request_id = request_id(&mut id_buf);
    let peer = req.extensions().get::<server::Peer>().cloned();
    let _permit = if public {
        None
    } else {
        match gw.shedder.try_enter() {
            Some(p) if !gw.is_draining() => Some(p),
            _ => {
                gw.metrics.deny("overloaded");
                return GatewayError::new(Kind::Overloaded, "the gateway is at capacity; retry shortly")
                    .wire(Wire::for_path(path))
                    .retry_after(1)
                    .into_response();
            }
        }
    };
    let span = gw.tracer.as_ref().filter(|_| !public).map(|t| {
        let parent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
        trace::SpanContext::start(parent, t.config.sample_ratio)
    });
    // A body that stops arriving for `body_idle_secs` fails its reader (slow clients).
    let idle = Duration::from_secs(gw.config.limits.body_idle_secs);
    let mut req = req.map(|b| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(idle, b)));
    gw.metrics.inflight.inc();
    let mut who = None;
    let mut resp = if public || route.is_none() {
        next.run(req).await
    } else {
        match authenticate(&gw, &mut req, span).await {
            Ok(p) => {
                who = Some(p);
                next.run(req).await
            }
            Err(refusal) => refusal,
        }
    };
    gw.metrics.inflight.dec();
    let elapsed = start.elapsed();
    let served = resp.extensions_mut().remove::<Served>().unwrap_or_default();
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
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    if let (Some(t), Some(ctx)) = (&gw.tracer, span.filter(|s| s.sampled)) {
        let mut attributes = vec![
            ("http.request.method", method.to_string()),
            ("url.path", path.to_owned()),
            ("palisade.request_id", request_id.to_owned()),
        ];
        if let Some(r) = route {
            attributes.push(("http.route", r.to_owned()));
        }
        if let Some(m) = &served.model {
            attributes.push(("palisade.model", m.clone()));
        }
        if let Some(b) = &served.backend {
            attributes.push(("palisade.backend", b.clone()));
        }
        if let Some(w) = &who {
            attributes.push(("enduser.id", w.id.clone()));
        }
        t.record(trace::SpanRecord {
            ctx,
            name: format!("{} {}", method, route.unwrap_or("unmatched")),
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
                request_id,
                principal: who.as_ref().map(|w| w.id.as_str()),
                method: method.as_str(),
                path,
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

/// Writes one access-log line (newline included) in the shape `tracing-subscriber`'s JSON
/// format gives every other log line (`timestamp`, `level`, `fields`, `target`), so that
/// consumers see one schema whichever path wrote it. Written by hand: this runs on every
/// request, and a derived `Serialize` with owned fields cost several times more.
fn write_access_line(
    buf: &mut Vec<u8>,
    now: std::time::SystemTime,
    line: &Line<'_>,
    served: &Served,
    body_sha256: Option<&str>,
    body_size: Option<usize>,
    body: Option<&str>,
) {
    use std::io::Write as _;
    buf.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp_micros(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\",\"request_id\":");
    json_str(buf, line.request_id);
    if let Some(p) = line.principal {
        buf.extend_from_slice(b",\"principal\":");
        json_str(buf, p);
    }
    buf.extend_from_slice(b",\"method\":");
    json_str(buf, line.method);
    buf.extend_from_slice(b",\"path\":");
    json_str(buf, line.path);
    let _ = write!(buf, ",\"status\":{},\"duration_ms\":", line.status);
    let _ = serde_json::to_writer(&mut *buf, &(line.elapsed.as_secs_f64() * 1000.0));
    if let Some(peer) = line.peer {
        // A socket address's text (digits, dots, colons, brackets, `%` and a scope
        // number) needs no escaping.
        let _ = write!(buf, ",\"peer\":\"{}\"", peer.addr);
        if let Some(c) = &peer.cert_sha256 {
            buf.extend_from_slice(b",\"client_cert\":");
            json_str(buf, c);
        }
    }
    let optional: [(&[u8], Option<&str>); 2] = [
        (b",\"model\":", served.model.as_deref()),
        (b",\"backend\":", served.backend.as_deref()),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            buf.extend_from_slice(key);
            json_str(buf, v);
        }
    }
    if let Some(t) = served.tokens {
        let _ = write!(buf, ",\"tokens\":{t}");
    }
    if let Some(h) = body_sha256 {
        buf.extend_from_slice(b",\"body_sha256\":");
        json_str(buf, h);
    }
    if let Some(n) = body_size {
        let _ = write!(buf, ",\"body_size\":{n}");
    }
    if let Some(b) = body {
        buf.extend_from_slice(b",\"body\":");
        json_str(buf, b);
    }
    buf.extend_from_slice(b"},\"target\":\"palisade::access\"}\n");
}

/// `s` as a JSON string, escaped by serde_json (writing into a `Vec` cannot fail).
fn json_str(buf: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *buf, s);
}

thread_local! {
    /// The last whole second formatted (`YYYY-MM-DDTHH:MM:SS`), reused within it.
    static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// `now` as RFC 3339 UTC with microseconds (`2026-12-04T21:45:00.123456Z`).
fn write_timestamp_micros(buf: &mut Vec<u8>, now: std::time::SystemTime) {
    let d = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (cached, mut text) = SECOND.with(std::cell::Cell::get);
    if cached != secs {
        let whole = palisade_core::time::rfc3339(secs);
        let date_time = whole.strip_suffix('Z').unwrap_or(&whole).as_bytes();
        if date_time.len() != text.len() {
            // Years past 9999 do not fit the cache; write them as they come.
            buf.extend_from_slice(date_time);
            let _ = std::io::Write::write_fmt(buf, format_args!(".{:06}Z", d.subsec_micros()));
            return;
        }
        text.copy_from_slice(date_time);
        SECOND.with(|c| c.set((secs, text)));
    }
    buf.extend_from_slice(&text);
    let mut micros = d.subsec_micros();
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    buf.push(b'.');
    buf.extend_from_slice(&digits);
    buf.push(b'Z');
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
                body_sha256 = Some(<[u8; 32]>::from(sha2::Sha256::digest(b)));
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
        let mut buf = Vec::with_capacity(512);
        let mut hex_buf = [0u8; 64];
        let body_sha256 = body_sha256.map(|d| {
            let _ = hex::encode_to_slice(d, &mut hex_buf);
            std::str::from_utf8(&hex_buf).unwrap_or_default()
        });
        write_access_line(
            &mut buf,
            std::time::SystemTime::now(),
            line,
            served,
            body_sha256,
            body_size,
            body_text.as_deref(),
        );
        sink(&buf);
        return;
    }
    let body_sha256 = body_sha256.map(hex::encode);
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

#[cfg(test)]
mod access_line_tests {
    use super::*;

    #[test]
    fn every_string_survives_json_escaping() {
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", b as char)).collect();
        samples.push("\"quoted\" \\ back\\slash \u{7f} é 漢字 🦀 \u{2028}".to_owned());
        samples.push(String::new());
        samples.push((0u8..0x20).map(char::from).collect());
        for s in samples {
            let mut buf = Vec::new();
            json_str(&mut buf, &s);
            let back: String = serde_json::from_slice(&buf).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn timestamps_have_microseconds_and_follow_the_second() {
        let at = |secs: u64, micros: u32| {
            let mut buf = Vec::new();
            write_timestamp_micros(&mut buf, std::time::UNIX_EPOCH + Duration::new(secs, micros * 1000));
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(at(0, 7), "1970-01-01T00:00:00.000007Z");
        // Within one second the cached part is reused; the next second replaces it.
        assert_eq!(at(1_796_000_000, 123_456), "2026-11-30T00:53:20.123456Z");
        assert_eq!(at(1_796_000_000, 999_999), "2026-11-30T00:53:20.999999Z");
        assert_eq!(at(1_796_000_001, 0), "2026-11-30T00:53:21.000000Z");
        for secs in [951_782_400u64, 4_102_444_799] {
            let whole = palisade_core::time::rfc3339(secs);
            assert_eq!(at(secs, 42), format!("{}.000042Z", whole.trim_end_matches('Z')));
        }
    }

    #[test]
    fn an_access_line_is_one_json_object_with_every_field() {
        let peer = server::Peer {
            addr: "[::1]:4711".parse().unwrap(),
            cert_sha256: Some("ab".repeat(32)),
        };
        let line = Line {
            request_id: "00ff00ff00ff00ff",
            principal: Some("key:\"odd\"\n"),
            method: "POST",
            path: "/v1/chat/completions",
            status: 200,
            elapsed: Duration::from_micros(1250),
            peer: Some(&peer),
        };
        let served = Served {
            model: Some("chat".into()),
            backend: Some("blue".into()),
            tokens: Some(42),
            ..Served::default()
        };
        let mut buf = Vec::new();
        write_access_line(
            &mut buf,
            std::time::SystemTime::now(),
            &line,
            &served,
            Some("cd"),
            Some(7),
            Some("hi"),
        );
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let f = &v["fields"];
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "palisade::access");
        assert_eq!(f["principal"], "key:\"odd\"\n");
        assert_eq!(f["peer"], "[::1]:4711");
        assert_eq!(f["client_cert"], "ab".repeat(32));
        assert_eq!(f["duration_ms"], 1.25);
        assert_eq!(f["tokens"], 42);
        assert_eq!(f["body_sha256"], "cd");
        assert_eq!(f["body_size"], 7);
        assert_eq!(f["body"], "hi");
        assert_eq!(
            (f["model"].as_str(), f["backend"].as_str()),
            (Some("chat"), Some("blue"))
        );
    }
}
