//! Safe deployments: every model has named backends (registry versions for ONNX models,
//! upstream models for LLMs) and a rollout state that says where traffic goes.
//!
//! - **Blue-green**: `switch` moves all traffic to another backend in one atomic state
//!   change; `rollback` moves it back to the previous one.
//! - **Canary**: a candidate gets a growing share of traffic (weight steps such as 10 →
//!   25 → 50 → 100 %). After each step's interval the gateway analyses the candidate's own
//!   requests in that step — error rate and p99 latency against the criteria — and either
//!   advances, promotes it (after the last step) or rolls back. Too few requests to judge
//!   ("no data") is a failure: a canary that gets no traffic is never promoted.
//! - **Shadow**: a backend receives a copy of each request; its answers are compared with
//!   the real ones and counted, never returned.
//!
//! The state lives in a [`DeployStore`]: this process's memory, or Redis when `redis_url` is
//! set, so that every replica routes alike. Each change takes the model's lease, starts
//! from the newest stored generation and writes the next one (compare-and-set); replicas
//! poll the store every `deploy_sync_ms`, adopt newer generations and add their canary
//! counts, and any replica's controller may judge a step — the lease picks one.
//!
//! Every change — operator or automatic — is an audit event. Operator changes are recorded
//! before they take effect and refused if the log cannot record them; an automatic
//! rollback takes effect even when the log is down (safety first) and says so in the log
//! once it is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditRecord, Auditor};
use crate::config::{ModelConfig, ModelKind};
use crate::deploy_store::{DeployStore, Lease, Shared, SharedCanary, Stats, Status, StoreError};
use crate::error::{GatewayError, Kind};
use crate::metrics::{Metrics, ModelBackend, RolloutState};
use crate::onnx::{OnnxModel, Profile};
use crate::source::{ModelSource, Selector, SourceVersion, MAX_MODEL_BYTES};
use crate::upstream::Upstream;

/// An ONNX model version in memory.
#[derive(Debug)]
pub struct Loaded {
    pub version: u64,
    pub digest: String,
    pub model: OnnxModel,
}

pub enum Target {
    Onnx {
        registry_model: String,
        selector: Selector,
        loaded: parking_lot::RwLock<Option<Arc<Loaded>>>,
    },
    OpenAi {
        upstream: Arc<Upstream>,
        model: String,
    },
}

/// What an analysis saw of a backend in one step (the `analysis` of audit events).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: f64,
}

impl From<&Stats> for Summary {
    fn from(s: &Stats) -> Self {
        Summary {
            requests: s.requests,
            errors: s.errors,
            error_rate: s.error_rate(),
            p99_ms: s.p99_ms(),
        }
    }
}

pub struct Backend {
    pub name: String,
    pub target: Target,
    /// This process's counts since they were last handed to the store.
    window: parking_lot::Mutex<Stats>,
    /// A load failure was logged as a warning (later ones go to debug).
    warned: std::sync::atomic::AtomicBool,
}

impl Backend {
    /// Records one request's outcome (a backend error, or success) and latency.
    pub fn record(&self, ok: bool, latency: Duration) {
        self.window.lock().record(ok, latency);
    }

    fn take(&self) -> Stats {
        std::mem::take(&mut *self.window.lock())
    }

    /// The loaded ONNX version, if this is an ONNX backend that has one.
    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        match &self.target {
            Target::Onnx { loaded, .. } => loaded.read().clone(),
            Target::OpenAi { .. } => None,
        }
    }

    fn ready(&self) -> bool {
        match &self.target {
            Target::Onnx { loaded, .. } => loaded.read().is_some(),
            Target::OpenAi { .. } => true,
        }
    }
}

/// When a canary step passes.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    pub backend: String,
    /// Traffic percentages, increasing, ending at 100.
    #[serde(default = "d_steps")]
    pub steps: Vec<u8>,
    /// How long each step runs before it is analysed, in seconds.
    #[serde(default = "d_interval")]
    pub interval_secs: f64,
    /// Largest share of failed requests (backend errors, 5xx) a step may have.
    #[serde(default = "d_error_rate")]
    pub max_error_rate: f64,
    /// Largest p99 latency, in milliseconds.
    #[serde(default = "d_p99")]
    pub max_p99_ms: f64,
    /// Fewest requests a step must see to be judged; fewer is a failure ("no data").
    #[serde(default = "d_min_requests")]
    pub min_requests: u64,
}

fn d_steps() -> Vec<u8> {
    vec![10, 25, 50, 100]
}
fn d_interval() -> f64 {
    60.0
}
fn d_error_rate() -> f64 {
    0.05
}
fn d_p99() -> f64 {
    1000.0
}
fn d_min_requests() -> u64 {
    20
}

#[derive(Clone, Debug)]
struct Canary {
    backend: usize,
    spec: CanarySpec,
    step: usize,
    /// The generation the canary started at.
    id: u64,
    step_started_ms: u64,
}

#[derive(Clone, Debug)]
struct State {
    stable: usize,
    previous: Option<usize>,
    canary: Option<Canary>,
    shadow: Option<usize>,
    /// Incremented by every change; the store's compare-and-set and the replicas'
    /// adoption of newer state both go by it.
    generation: u64,
    status: Status,
    last_change: String,
}

/// The rollout state as the API reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateView {
    pub model: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub generation: u64,
    pub stable: String,
    pub previous: Option<String>,
    pub canary: Option<CanaryView>,
    pub shadow: Option<String>,
    pub last_change: String,
    pub backends: Vec<BackendView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CanaryView {
    pub backend: String,
    pub weight: u8,
    pub step: usize,
    pub steps: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendView {
    pub name: String,
    pub ready: bool,
    pub weight: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

pub struct Deployment {
    pub name: String,
    pub config: ModelConfig,
    pub backends: Vec<Backend>,
    state: parking_lot::RwLock<State>,
    /// The canary (by id) a controller task of this process is driving, 0 for none.
    driving: parking_lot::Mutex<u64>,
}

/// Where one request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub backend: usize,
    pub shadow: Option<usize>,
}

impl Deployment {
    pub fn kind(&self) -> ModelKind {
        self.config.kind
    }

    /// Picks the backend for one request (the canary by its weight) and the shadow.
    pub fn route(&self) -> Route {
        let s = self.state.read();
        let backend = match &s.canary {
            Some(c) if fastrand::u8(0..100) < c.spec.steps[c.step] => c.backend,
            _ => s.stable,
        };
        Route {
            backend,
            shadow: s.shadow.filter(|&i| i != backend),
        }
    }

    pub fn backend_named(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == name)
    }

    /// The stable backend is loaded (ONNX) — the model can take requests.
    pub fn ready(&self) -> bool {
        self.backends[self.state.read().stable].ready()
    }

    fn weights(&self, s: &State) -> Vec<u8> {
        let mut w = vec![0u8; self.backends.len()];
        match &s.canary {
            Some(c) => {
                let cw = c.spec.steps[c.step];
                w[c.backend] = cw;
                w[s.stable] = 100 - cw;
            }
            None => w[s.stable] = 100,
        }
        w
    }

    pub fn view(&self) -> StateView {
        let s = self.state.read().clone();
        let weights = self.weights(&s);
        StateView {
            model: self.name.clone(),
            kind: match self.config.kind {
                ModelKind::Onnx => "onnx",
                ModelKind::Openai => "openai",
            },
            status: s.status.as_str(),
            generation: s.generation,
            stable: self.backends[s.stable].name.clone(),
            previous: s.previous.map(|i| self.backends[i].name.clone()),
            canary: s.canary.as_ref().map(|c| CanaryView {
                backend: self.backends[c.backend].name.clone(),
                weight: c.spec.steps[c.step],
                step: c.step,
                steps: c.spec.steps.clone(),
            }),
            shadow: s.shadow.map(|i| self.backends[i].name.clone()),
            last_change: s.last_change.clone(),
            backends: self
                .backends
                .iter()
                .zip(weights)
                .map(|(b, weight)| {
                    let l = b.loaded();
                    BackendView {
                        name: b.name.clone(),
                        ready: b.ready(),
                        weight,
                        version: l.as_ref().map(|l| l.version),
                        digest: l.map(|l| l.digest.clone()),
                    }
                })
                .collect(),
        }
    }

    fn name_of(&self, i: usize) -> String {
        self.backends[i].name.clone()
    }

    fn to_shared(&self, s: &State) -> Shared {
        Shared {
            generation: s.generation,
            stable: self.name_of(s.stable),
            previous: s.previous.map(|i| self.name_of(i)),
            canary: s.canary.as_ref().map(|c| SharedCanary {
                backend: self.name_of(c.backend),
                spec: c.spec.clone(),
                step: c.step,
                id: c.id,
                step_started_ms: c.step_started_ms,
            }),
            shadow: s.shadow.map(|i| self.name_of(i)),
            status: s.status,
            last_change: s.last_change.clone(),
        }
    }

    /// The stored state in this process's backend indices; an error when it names a
    /// backend this replica's configuration lacks.
    fn state_from(&self, s: &Shared) -> Result<State, String> {
        let find = |n: &str| {
            self.backend_named(n)
                .ok_or_else(|| format!("the shared state names backend `{n}`, which is not configured here"))
        };
        let canary = match &s.canary {
            Some(c) => {
                if c.step >= c.spec.steps.len() {
                    return Err(format!(
                        "the shared canary is at step {} of {}",
                        c.step,
                        c.spec.steps.len()
                    ));
                }
                Some(Canary {
                    backend: find(&c.backend)?,
                    spec: c.spec.clone(),
                    step: c.step,
                    id: c.id,
                    step_started_ms: c.step_started_ms,
                })
            }
            None => None,
        };
        Ok(State {
            stable: find(&s.stable)?,
            previous: s.previous.as_deref().map(find).transpose()?,
            canary,
            shadow: s.shadow.as_deref().map(find).transpose()?,
            generation: s.generation,
            status: s.status,
            last_change: s.last_change.clone(),
        })
    }
}

/// Wall-clock milliseconds: canary steps are timed so that any replica can judge them.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A change, decided under the model's lease.
struct Plan {
    next: State,
    actor: String,
    action: &'static str,
    detail: serde_json::Value,
    /// Operator changes and canary advances are recorded before they take effect and
    /// refused if the log cannot record them; an automatic rollback takes effect first
    /// (safety does not wait for the audit log) and is recorded after.
    rollback: bool,
}

/// Every model's deployment, plus what changes them.
pub struct Deployments {
    models: HashMap<String, Arc<Deployment>>,
    names: Vec<String>,
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    source: Option<Arc<dyn ModelSource>>,
    store: Arc<dyn DeployStore>,
    /// How often replicas read the shared store (and hand it their counts); a canary step
    /// is judged this long after its interval ends so that every replica's counts are in.
    sync: Duration,
    /// When a store failure was last logged (Unix seconds).
    store_logged: std::sync::atomic::AtomicU64,
    /// Where canary controllers run.
    background: crate::server::Background,
}

fn conflict(msg: impl Into<String>) -> GatewayError {
    GatewayError::new(Kind::Conflict, msg)
}

fn unavailable(e: &StoreError) -> GatewayError {
    GatewayError::new(
        Kind::Unavailable,
        format!("the deployment state store is unavailable ({e}); nothing was changed"),
    )
    .retry_after(1)
}

impl Deployments {
    pub fn new(
        configs: &[ModelConfig],
        upstreams: &HashMap<String, Arc<Upstream>>,
        source: Option<Arc<dyn ModelSource>>,
        auditor: Arc<Auditor>,
        metrics: Arc<Metrics>,
        store: Arc<dyn DeployStore>,
        sync: Duration,
    ) -> Result<Deployments, String> {
        let mut models = HashMap::new();
        let mut names = Vec::new();
        for c in configs {
            let mut backends = Vec::new();
            for b in &c.backends {
                let target = match c.kind {
                    ModelKind::Onnx => Target::Onnx {
                        registry_model: b.registry_model.clone().unwrap_or_else(|| c.name.clone()),
                        selector: match (b.version, &b.alias) {
                            (Some(v), _) => Selector::Version(v),
                            (None, Some(a)) => Selector::Alias(a.clone()),
                            (None, None) => Selector::Alias("production".into()),
                        },
                        loaded: parking_lot::RwLock::new(None),
                    },
                    ModelKind::Openai => {
                        let name = b.upstream.as_deref().unwrap_or_default();
                        Target::OpenAi {
                            upstream: upstreams
                                .get(name)
                                .cloned()
                                .ok_or_else(|| format!("model `{}`: no upstream `{name}`", c.name))?,
                            model: b.upstream_model.clone().unwrap_or_else(|| c.name.clone()),
                        }
                    }
                };
                backends.push(Backend {
                    name: b.name.clone(),
                    target,
                    window: parking_lot::Mutex::new(Stats::default()),
                    warned: std::sync::atomic::AtomicBool::new(false),
                });
            }
            let find = |n: &Option<String>| n.as_ref().and_then(|n| backends.iter().position(|b| &b.name == n));
            let stable = find(&c.active).unwrap_or(0);
            let shadow = find(&c.shadow);
            let d = Deployment {
                name: c.name.clone(),
                config: c.clone(),
                state: parking_lot::RwLock::new(State {
                    stable,
                    previous: None,
                    canary: None,
                    shadow,
                    generation: 0,
                    status: Status::Stable,
                    last_change: "configured".into(),
                }),
                driving: parking_lot::Mutex::new(0),
                backends,
            };
            names.push(c.name.clone());
            models.insert(c.name.clone(), Arc::new(d));
        }
        let me = Deployments {
            models,
            names,
            auditor,
            metrics,
            source,
            store,
            sync,
            store_logged: std::sync::atomic::AtomicU64::new(0),
            background: crate::server::Background::capture(),
        };
        for d in me.models.values() {
            me.publish(d);
        }
        Ok(me)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.models.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.models.values()
    }

    /// `memory` or `redis`.
    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// Whether replicas share this state (and [`Deployments::sync`] should run).
    pub fn shared(&self) -> bool {
        self.store.shared()
    }

    /// Rollout gauges for one model.
    fn publish(&self, d: &Deployment) {
        let s = d.state.read().clone();
        for (b, w) in d.backends.iter().zip(d.weights(&s)) {
            self.metrics
                .rollout_weight
                .get_or_create(&ModelBackend {
                    model: d.name.clone(),
                    backend: b.name.clone(),
                })
                .set(i64::from(w));
        }
        for state in [Status::Stable, Status::Canary, Status::RolledBack] {
            self.metrics
                .rollout_state
                .get_or_create(&RolloutState {
                    model: d.name.clone(),
                    state: state.as_str(),
                })
                .set(i64::from(s.status == state));
        }
    }

    /// At most one store-failure log line per 10 s (the store is polled every second).
    fn should_log(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now_ms() / 1000;
        let last = self.store_logged.load(Relaxed);
        now >= last + 10 && self.store_logged.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    }

    fn log_store_error(&self, e: &StoreError) {
        if self.should_log() {
            tracing::error!(store = self.store.name(), error = %e, "deployment state store unavailable: serving the last state read");
        }
    }

    /// Loads (or reloads after an alias moved) every ONNX backend. Failures are logged
    /// and audited; a backend that fails keeps serving what it had.
    pub async fn refresh(&self) {
        let Some(source) = &self.source else {
            return;
        };
        for d in self.models.values() {
            for b in &d.backends {
                let Target::Onnx {
                    registry_model,
                    selector,
                    loaded,
                } = &b.target
                else {
                    continue;
                };
                let current = loaded.read().as_ref().map(|l| l.version);
                let v = match source.resolve(registry_model, selector).await {
                    Ok(v) => v,
                    Err(e) => {
                        if current.is_none() && !b.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            tracing::warn!(model = %d.name, backend = %b.name, error = %e, "ONNX backend not loaded (retrying)");
                        } else {
                            tracing::debug!(model = %d.name, backend = %b.name, error = %e, "ONNX backend not resolved");
                        }
                        continue;
                    }
                };
                if current == Some(v.version) {
                    continue;
                }
                match load(source.as_ref(), registry_model, &v).await {
                    Ok(model) => {
                        let digest = v.digest.clone();
                        *loaded.write() = Some(Arc::new(Loaded {
                            version: v.version,
                            digest: digest.clone(),
                            model,
                        }));
                        self.metrics
                            .model_loads
                            .get_or_create(&ModelBackend {
                                model: d.name.clone(),
                                backend: b.name.clone(),
                            })
                            .inc();
                        tracing::info!(model = %d.name, backend = %b.name, version = v.version, %digest, "ONNX model loaded");
                        let _ = self
                            .auditor
                            .record(AuditRecord::new(
                                "palisade/gateway",
                                "load-model",
                                &format!("{}/{}", d.name, b.name),
                                "ok",
                                json!({ "registry_model": registry_model, "selector": selector.to_string(),
                                        "version": v.version, "digest": digest, "replaced": current }),
                            ))
                            .await;
                    }
                    Err(e) => {
                        tracing::error!(model = %d.name, backend = %b.name, version = v.version, error = %e, "cannot load ONNX model");
                        self.auditor.refusal(AuditRecord::new(
                            "palisade/gateway",
                            "load-model",
                            &format!("{}/{}", d.name, b.name),
                            "failed",
                            json!({ "version": v.version, "error": e }),
                        ));
                    }
                }
            }
        }
    }

    /// Makes `next` this process's state. Each generation's canary counts start from
    /// zero, so the canary backend's unsent counts (of a step already decided) go.
    fn apply(self: &Arc<Self>, d: &Arc<Deployment>, next: State) {
        let old = {
            let mut s = d.state.write();
            let old = s.canary.as_ref().map(|c| c.backend);
            *s = next;
            old
        };
        let new = d.state.read().canary.as_ref().map(|c| c.backend);
        for i in old.into_iter().chain(new) {
            d.backends[i].take();
        }
        self.publish(d);
        self.ensure_driver(d);
    }

    /// Starts a controller task for the current canary unless one runs here already.
    /// Every replica runs one; the lease decides which of them judges each step.
    fn ensure_driver(self: &Arc<Self>, d: &Arc<Deployment>) {
        let Some(id) = d.state.read().canary.as_ref().map(|c| c.id) else {
            return;
        };
        {
            let mut driving = d.driving.lock();
            if *driving == id {
                return;
            }
            *driving = id;
        }
        let me = self.clone();
        let dep = d.clone();
        let background = self.background.clone();
        background.spawn(async move { me.drive(dep, id).await });
    }

    /// Adopts stored state newer than this process's.
    fn adopt(self: &Arc<Self>, d: &Arc<Deployment>, stored: &Shared) {
        if stored.generation <= d.state.read().generation {
            return;
        }
        match d.state_from(stored) {
            Ok(next) => {
                tracing::info!(model = %d.name, generation = stored.generation, change = %stored.last_change, "deployment state adopted from the shared store");
                self.apply(d, next);
            }
            Err(e) => {
                // Keep routing as before, but count the stored generation as seen: the
                // next change here replaces the stored state (and this is logged once).
                d.state.write().generation = stored.generation;
                tracing::error!(model = %d.name, generation = stored.generation, error = %e, "shared deployment state ignored; the next change replaces it");
            }
        }
    }

    /// Reads the shared store and adopts what is newer (one model, or all).
    async fn pull(self: &Arc<Self>, only: Option<&Arc<Deployment>>) -> Result<(), StoreError> {
        if !self.store.shared() {
            return Ok(());
        }
        let names = match only {
            Some(d) => vec![d.name.clone()],
            None => self.names.clone(),
        };
        let stored = self.store.load(&names).await?;
        for (name, s) in names.iter().zip(stored) {
            if let (Some(d), Some(s)) = (self.models.get(name), s) {
                self.adopt(&d.clone(), &s);
            }
        }
        Ok(())
    }

    /// Hands this process's counts for the running canary to the store (kept for the
    /// next attempt if the store is down).
    async fn push_counts(&self, d: &Deployment) -> Result<(), StoreError> {
        let Some((backend, generation)) = ({
            let s = d.state.read();
            s.canary.as_ref().map(|c| (c.backend, s.generation))
        }) else {
            return Ok(());
        };
        let counts = d.backends[backend].take();
        if counts.is_empty() {
            return Ok(());
        }
        let r = self.store.add(&d.name, generation, &counts).await;
        if r.is_err() && d.state.read().generation == generation {
            d.backends[backend].window.lock().merge(&counts);
        }
        r
    }

    /// One round of replica synchronisation: counts out, newer state in. Run every
    /// `deploy_sync_ms` by [`crate::Gateway::start`] when the store is shared.
    pub async fn sync(self: &Arc<Self>) {
        for d in self.models.values() {
            if let Err(e) = self.push_counts(d).await {
                self.log_store_error(&e);
                return;
            }
        }
        if let Err(e) = self.pull(None).await {
            self.log_store_error(&e);
        }
    }

    /// Takes the model's change lease: an operator waits up to two seconds for it, the
    /// canary controller does not wait.
    async fn lease(&self, d: &Deployment, operator: bool) -> Result<Option<Lease>, StoreError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(l) = self.store.lease(&d.name).await? {
                return Ok(Some(l));
            }
            if !operator || Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn release(&self, lease: Lease) {
        // A lease that cannot be released expires on its own.
        if let Err(e) = self.store.release(lease).await {
            tracing::warn!(error = %e, "deployment lease not released (it expires)");
        }
    }

    /// Records, stores and applies a planned change (under the lease, from `cur`).
    async fn commit(self: &Arc<Self>, d: &Arc<Deployment>, cur: &State, mut plan: Plan) -> Result<(), GatewayError> {
        plan.next.generation = cur.generation + 1;
        let record = AuditRecord::new(&plan.actor, plan.action, &d.name, "ok", plan.detail);
        if !plan.rollback {
            if let Err(e) = self.auditor.record(record.clone()).await {
                tracing::error!(error = %e, "audit append failed");
                return Err(GatewayError::new(
                    Kind::Unavailable,
                    "the audit log could not record this change; nothing was changed",
                )
                .retry_after(1));
            }
        }
        let shared = d.to_shared(&plan.next);
        let saved = self.store.save(&d.name, cur.generation, &shared).await;
        let failed = match saved {
            Ok(true) => None,
            Ok(false) => Some(conflict(format!(
                "the deployment of `{}` was changed concurrently; nothing was changed",
                d.name
            ))),
            Err(e) => Some(unavailable(&e)),
        };
        if let Some(e) = failed {
            if plan.rollback {
                // Roll this replica back anyway; the others judge the same step.
                tracing::error!(model = %d.name, error = %e.message, "rollback applied here but not stored for other replicas");
            } else {
                self.auditor.refusal(AuditRecord::new(
                    &plan.actor,
                    plan.action,
                    &d.name,
                    "failed",
                    json!({ "error": e.message }),
                ));
                return Err(e);
            }
        }
        self.apply(d, plan.next);
        if plan.rollback && self.auditor.record(record.clone()).await.is_err() {
            self.auditor.refusal(record);
        }
        Ok(())
    }

    /// An operator's change: the lease, the newest stored state, the plan, the commit.
    async fn operate(
        self: &Arc<Self>,
        model: &str,
        plan: impl FnOnce(&Deployment, &State) -> Result<Plan, GatewayError>,
    ) -> Result<StateView, GatewayError> {
        let d = self.deployment(model)?.clone();
        let lease = self
            .lease(&d, true)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| conflict(format!("another change to `{model}` is in progress; try again")))?;
        let result = async {
            self.pull(Some(&d)).await.map_err(|e| unavailable(&e))?;
            let cur = d.state.read().clone();
            let p = plan(&d, &cur)?;
            self.commit(&d, &cur, p).await
        }
        .await;
        self.release(lease).await;
        result.map(|()| d.view())
    }

    fn deployment(&self, model: &str) -> Result<&Arc<Deployment>, GatewayError> {
        self.models
            .get(model)
            .ok_or_else(|| GatewayError::new(Kind::NotFound, format!("no model `{model}`")))
    }

    fn backend(d: &Deployment, name: &str) -> Result<usize, GatewayError> {
        let i = d
            .backend_named(name)
            .ok_or_else(|| GatewayError::new(Kind::NotFound, format!("model `{}` has no backend `{name}`", d.name)))?;
        if !d.backends[i].ready() {
            return Err(conflict(format!("backend `{name}` of `{}` is not loaded", d.name)));
        }
        Ok(i)
    }

    /// Blue-green: all traffic to `to`, atomically. Cancels a running canary.
    pub async fn switch(self: &Arc<Self>, model: &str, to: &str, actor: &str) -> Result<StateView, GatewayError> {
        self.operate(model, |d, cur| {
            let i = Self::backend(d, to)?;
            let from = d.name_of(cur.stable);
            let mut next = cur.clone();
            if next.stable != i {
                next.previous = Some(next.stable);
            }
            next.stable = i;
            next.canary = None;
            next.status = Status::Stable;
            next.last_change = format!("switched from {from} to {to} by {actor}");
            Ok(Plan {
                next,
                actor: actor.into(),
                action: "deploy-switch",
                detail: json!({ "from": from, "to": to }),
                rollback: false,
            })
        })
        .await
    }

    /// Rolls back: aborts a running canary, or returns to the previous stable backend.
    pub async fn rollback(self: &Arc<Self>, model: &str, actor: &str) -> Result<StateView, GatewayError> {
        self.operate(model, |d, cur| {
            let mut next = cur.clone();
            next.status = Status::RolledBack;
            let detail = if let Some(c) = &cur.canary {
                let name = d.name_of(c.backend);
                next.canary = None;
                next.last_change = format!("canary {name} rolled back by {actor}");
                json!({ "canary": name, "reason": "operator" })
            } else if let Some(p) = cur.previous {
                let (from, to) = (d.name_of(cur.stable), d.name_of(p));
                if !d.backends[p].ready() {
                    return Err(conflict(format!("the previous backend `{to}` is not loaded")));
                }
                next.previous = Some(cur.stable);
                next.stable = p;
                next.last_change = format!("rolled back from {from} to {to} by {actor}");
                json!({ "from": from, "to": to })
            } else {
                return Err(conflict(format!("`{model}` has nothing to roll back to")));
            };
            Ok(Plan {
                next,
                actor: actor.into(),
                action: "deploy-rollback",
                detail,
                rollback: false,
            })
        })
        .await
    }

    /// Sends a copy of every request to `backend` (or stops with `None`).
    pub async fn set_shadow(
        self: &Arc<Self>,
        model: &str,
        backend: Option<&str>,
        actor: &str,
    ) -> Result<StateView, GatewayError> {
        self.operate(model, |d, cur| {
            let i = backend.map(|b| Self::backend(d, b)).transpose()?;
            if i.is_some() && i == Some(cur.stable) {
                return Err(conflict("the shadow backend cannot be the stable one"));
            }
            let mut next = cur.clone();
            next.shadow = i;
            next.last_change = match backend {
                Some(b) => format!("shadow traffic to {b} by {actor}"),
                None => format!("shadow traffic stopped by {actor}"),
            };
            Ok(Plan {
                next,
                actor: actor.into(),
                action: "deploy-shadow",
                detail: json!({ "shadow": backend }),
                rollback: false,
            })
        })
        .await
    }

    /// Starts a canary of `spec.backend`; controller tasks analyse and advance it.
    pub async fn start_canary(
        self: &Arc<Self>,
        model: &str,
        spec: CanarySpec,
        actor: &str,
    ) -> Result<StateView, GatewayError> {
        let steps_ok = !spec.steps.is_empty()
            && spec.steps.windows(2).all(|w| w[0] < w[1])
            && spec.steps.first().is_some_and(|&s| s >= 1)
            && spec.steps.last() == Some(&100)
            && spec.steps.len() <= 20;
        if !steps_ok {
            return Err(GatewayError::invalid(
                "steps: 1-20 increasing percentages from at least 1, ending at 100",
            ));
        }
        let sane = (0.05..=86_400.0).contains(&spec.interval_secs)
            && (0.0..=1.0).contains(&spec.max_error_rate)
            && spec.max_p99_ms > 0.0
            && spec.max_p99_ms.is_finite();
        if !sane {
            return Err(GatewayError::invalid(
                "interval_secs 0.05-86400, max_error_rate 0-1, max_p99_ms positive",
            ));
        }
        self.operate(model, |d, cur| {
            let i = Self::backend(d, &spec.backend)?;
            if i == cur.stable {
                return Err(conflict(format!("`{}` is already the stable backend", spec.backend)));
            }
            let mut next = cur.clone();
            next.canary = Some(Canary {
                backend: i,
                spec: spec.clone(),
                step: 0,
                id: cur.generation + 1,
                step_started_ms: now_ms(),
            });
            next.status = Status::Canary;
            next.last_change = format!("canary {} started by {actor} at {}%", spec.backend, spec.steps[0]);
            Ok(Plan {
                next,
                actor: actor.into(),
                action: "deploy-canary",
                detail: json!({ "spec": spec }),
                rollback: false,
            })
        })
        .await
    }

    /// A canary's controller: sleeps until the current step is due, then (holding the
    /// lease) judges it on every replica's counts and advances, promotes or rolls back.
    /// Ends when the canary does (or another change replaced it).
    async fn drive(self: Arc<Self>, d: Arc<Deployment>, id: u64) {
        let grace = if self.store.shared() {
            self.sync + Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        loop {
            let due = match d.state.read().canary.as_ref().filter(|c| c.id == id) {
                Some(c) => c.step_started_ms + (c.spec.interval_secs * 1000.0) as u64 + grace.as_millis() as u64,
                None => break,
            };
            let now = now_ms();
            if now < due {
                tokio::time::sleep(Duration::from_millis(due - now)).await;
                continue;
            }
            match self.judge(&d, id, due).await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(Duration::from_millis(50).max(grace / 4)).await,
                Err(e) => {
                    // Retried every half second or so; logged at most every 10 s.
                    if self.should_log() {
                        tracing::error!(model = %d.name, error = %e.message, "canary held: will judge the step again");
                    }
                    tokio::time::sleep(Duration::from_millis(500).max(grace)).await;
                }
            }
        }
        let mut driving = d.driving.lock();
        if *driving == id {
            *driving = 0;
        }
    }

    /// Judges the current step if it is still this canary's and due. `Ok(false)`: not
    /// this replica's turn (another holds the lease, or the state moved on).
    async fn judge(self: &Arc<Self>, d: &Arc<Deployment>, id: u64, due: u64) -> Result<bool, GatewayError> {
        let Some(lease) = self.lease(d, false).await.map_err(|e| unavailable(&e))? else {
            return Ok(false);
        };
        let result = async {
            self.pull(Some(d)).await.map_err(|e| unavailable(&e))?;
            let cur = d.state.read().clone();
            let Some(c) = cur.canary.clone().filter(|c| c.id == id) else {
                return Ok(false);
            };
            let due_now = c.step_started_ms + (c.spec.interval_secs * 1000.0) as u64;
            if due_now > due {
                // Another replica advanced the step after this one read the state.
                return Ok(false);
            }
            self.push_counts(d).await.map_err(|e| unavailable(&e))?;
            let seen = self
                .store
                .stats(&d.name, cur.generation)
                .await
                .map_err(|e| unavailable(&e))?;
            let analysis = Summary::from(&seen);
            let plan = Self::verdict(d, &cur, &c, analysis);
            self.commit(d, &cur, plan).await.map(|()| true)
        }
        .await;
        self.release(lease).await;
        result
    }

    /// What a step's counts mean: roll back, advance, or promote.
    fn verdict(d: &Deployment, cur: &State, c: &Canary, seen: Summary) -> Plan {
        let name = d.name_of(c.backend);
        let failure = if seen.requests < c.spec.min_requests {
            Some(format!(
                "no data: {} requests in the step, {} needed",
                seen.requests, c.spec.min_requests
            ))
        } else if seen.error_rate > c.spec.max_error_rate {
            Some(format!(
                "error rate {:.3} over {:.3} ({} of {} requests)",
                seen.error_rate, c.spec.max_error_rate, seen.errors, seen.requests
            ))
        } else if seen.p99_ms > c.spec.max_p99_ms {
            Some(format!(
                "p99 latency {:.1} ms over {:.1} ms",
                seen.p99_ms, c.spec.max_p99_ms
            ))
        } else {
            None
        };
        let weight = c.spec.steps[c.step];
        let mut next = cur.clone();
        let actor = "palisade/gateway".to_owned();
        if let Some(reason) = failure {
            tracing::warn!(model = %d.name, backend = %name, weight, %reason, "canary rolled back");
            next.canary = None;
            next.status = Status::RolledBack;
            next.last_change = format!("canary {name} rolled back at {weight}%: {reason}");
            return Plan {
                next,
                actor,
                action: "deploy-rollback",
                detail: json!({ "canary": name, "weight": weight, "reason": reason, "analysis": seen }),
                rollback: true,
            };
        }
        let last = c.step + 1 >= c.spec.steps.len();
        let to = if last { 100 } else { c.spec.steps[c.step + 1] };
        tracing::info!(model = %d.name, backend = %name, weight = to, promoted = last, "canary step passed");
        if last {
            next.previous = Some(cur.stable);
            next.stable = c.backend;
            next.canary = None;
            next.status = Status::Stable;
            next.last_change = format!("canary {name} promoted after {} steps", c.spec.steps.len());
        } else if let Some(nc) = next.canary.as_mut() {
            nc.step += 1;
            nc.step_started_ms = now_ms();
            next.last_change = format!("canary {name} advanced to {to}%");
        }
        Plan {
            next,
            actor,
            action: if last { "deploy-promote" } else { "deploy-canary-step" },
            detail: json!({ "canary": name, "passed_weight": weight, "next_weight": to, "analysis": seen }),
            rollback: false,
        }
    }
}

async fn load(source: &dyn ModelSource, model: &str, v: &SourceVersion) -> Result<OnnxModel, String> {
    let file = crate::source::pick_model_file(&v.files)?.to_owned();
    let bytes = source.read(model, v.version, &file, MAX_MODEL_BYTES).await?;
    let profile = match crate::source::pick_profile_file(&v.files) {
        Some(p) => {
            let raw = source.read(model, v.version, p, 16 << 20).await?;
            Some(serde_json::from_slice::<Profile>(&raw).map_err(|e| format!("{p}: not a data profile: {e}"))?)
        }
        None => None,
    };
    tokio::task::spawn_blocking(move || OnnxModel::load(&bytes, profile))
        .await
        .map_err(|e| format!("model loader: {e}"))?
}

/// Start time of a request, for backend latency.
pub fn now() -> Instant {
    Instant::now()
}
