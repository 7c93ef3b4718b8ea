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

/// Latencies kept per analysis window (a reservoir sample beyond this).
const SAMPLES: usize = 4096;

#[derive(Default)]
struct Window {
    requests: u64,
    errors: u64,
    latencies_ms: Vec<f64>,
}

/// What one analysis window saw of a backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: f64,
}

pub struct Backend {
    pub name: String,
    pub target: Target,
    window: parking_lot::Mutex<Window>,
    /// A load failure was logged as a warning (later ones go to debug).
    warned: std::sync::atomic::AtomicBool,
}

impl Backend {
    /// Records one request's outcome (a backend error, or success) and latency.
    pub fn record(&self, ok: bool, latency: Duration) {
        let mut w = self.window.lock();
        w.requests += 1;
        if !ok {
            w.errors += 1;
        }
        let ms = latency.as_secs_f64() * 1000.0;
        if w.latencies_ms.len() < SAMPLES {
            w.latencies_ms.push(ms);
        } else {
            let j = fastrand::u64(0..w.requests) as usize;
            if j < SAMPLES {
                w.latencies_ms[j] = ms;
            }
        }
    }

    fn take(&self) -> Summary {
        let w = std::mem::take(&mut *self.window.lock());
        let mut l = w.latencies_ms;
        l.sort_by(f64::total_cmp);
        let p99 = if l.is_empty() {
            0.0
        } else {
            l[((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1]
        };
        Summary {
            requests: w.requests,
            errors: w.errors,
            error_rate: if w.requests == 0 {
                0.0
            } else {
                w.errors as f64 / w.requests as f64
            },
            p99_ms: p99,
        }
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
    generation: u64,
}

#[derive(Clone, Debug)]
struct State {
    stable: usize,
    previous: Option<usize>,
    canary: Option<Canary>,
    shadow: Option<usize>,
    generation: u64,
    status: &'static str,
    last_change: String,
}

/// The rollout state as the API reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateView {
    pub model: String,
    pub kind: &'static str,
    pub status: &'static str,
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
            status: s.status,
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
}

/// Every model's deployment, plus what changes them.
pub struct Deployments {
    models: HashMap<String, Arc<Deployment>>,
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    source: Option<Arc<dyn ModelSource>>,
}

fn conflict(msg: impl Into<String>) -> GatewayError {
    GatewayError::new(Kind::Conflict, msg)
}

impl Deployments {
    pub fn new(
        configs: &[ModelConfig],
        upstreams: &HashMap<String, Arc<Upstream>>,
        source: Option<Arc<dyn ModelSource>>,
        auditor: Arc<Auditor>,
        metrics: Arc<Metrics>,
    ) -> Result<Deployments, String> {
        let mut models = HashMap::new();
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
                    window: parking_lot::Mutex::new(Window::default()),
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
                    status: "stable",
                    last_change: "configured".into(),
                }),
                backends,
            };
            models.insert(c.name.clone(), Arc::new(d));
        }
        let me = Deployments {
            models,
            auditor,
            metrics,
            source,
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
        for state in ["stable", "canary", "rolled-back"] {
            self.metrics
                .rollout_state
                .get_or_create(&RolloutState {
                    model: d.name.clone(),
                    state,
                })
                .set(i64::from(s.status == state));
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

    async fn record(
        &self,
        actor: &str,
        action: &str,
        d: &Deployment,
        detail: serde_json::Value,
    ) -> Result<(), GatewayError> {
        match self
            .auditor
            .record(AuditRecord::new(actor, action, &d.name, "ok", detail))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                Err(GatewayError::new(
                    Kind::Unavailable,
                    "the audit log could not record this change; nothing was changed",
                )
                .retry_after(1))
            }
        }
    }

    /// Blue-green: all traffic to `to`, atomically. Cancels a running canary.
    pub async fn switch(&self, model: &str, to: &str, actor: &str) -> Result<StateView, GatewayError> {
        let d = self.deployment(model)?;
        let i = Self::backend(d, to)?;
        let from = d.backends[d.state.read().stable].name.clone();
        self.record(actor, "deploy-switch", d, json!({ "from": from, "to": to }))
            .await?;
        {
            let mut s = d.state.write();
            if s.stable != i {
                s.previous = Some(s.stable);
            }
            s.stable = i;
            s.canary = None;
            s.generation += 1;
            s.status = "stable";
            s.last_change = format!("switched from {from} to {to} by {actor}");
        }
        self.publish(d);
        Ok(d.view())
    }

    /// Rolls back: aborts a running canary, or returns to the previous stable backend.
    pub async fn rollback(&self, model: &str, actor: &str) -> Result<StateView, GatewayError> {
        let d = self.deployment(model)?;
        let (canary, previous) = {
            let s = d.state.read();
            (s.canary.clone(), s.previous)
        };
        if let Some(c) = canary {
            let name = d.backends[c.backend].name.clone();
            self.record(
                actor,
                "deploy-rollback",
                d,
                json!({ "canary": name, "reason": "operator" }),
            )
            .await?;
            let mut s = d.state.write();
            s.canary = None;
            s.generation += 1;
            s.status = "rolled-back";
            s.last_change = format!("canary {name} rolled back by {actor}");
        } else if let Some(p) = previous {
            let (from, to) = (
                d.backends[d.state.read().stable].name.clone(),
                d.backends[p].name.clone(),
            );
            if !d.backends[p].ready() {
                return Err(conflict(format!("the previous backend `{to}` is not loaded")));
            }
            self.record(actor, "deploy-rollback", d, json!({ "from": from, "to": to }))
                .await?;
            let mut s = d.state.write();
            s.previous = Some(s.stable);
            s.stable = p;
            s.generation += 1;
            s.status = "rolled-back";
            s.last_change = format!("rolled back from {from} to {to} by {actor}");
        } else {
            return Err(conflict(format!("`{model}` has nothing to roll back to")));
        }
        self.publish(d);
        Ok(d.view())
    }

    /// Sends a copy of every request to `backend` (or stops with `None`).
    pub async fn set_shadow(&self, model: &str, backend: Option<&str>, actor: &str) -> Result<StateView, GatewayError> {
        let d = self.deployment(model)?;
        let i = match backend {
            Some(b) => Some(Self::backend(d, b)?),
            None => None,
        };
        if i.is_some() && i == Some(d.state.read().stable) {
            return Err(conflict("the shadow backend cannot be the stable one"));
        }
        self.record(actor, "deploy-shadow", d, json!({ "shadow": backend }))
            .await?;
        d.state.write().shadow = i;
        Ok(d.view())
    }

    /// Starts a canary of `spec.backend`; a background task analyses and advances it.
    pub async fn start_canary(
        self: &Arc<Self>,
        model: &str,
        spec: CanarySpec,
        actor: &str,
    ) -> Result<StateView, GatewayError> {
        let d = self.deployment(model)?.clone();
        let i = Self::backend(&d, &spec.backend)?;
        if i == d.state.read().stable {
            return Err(conflict(format!("`{}` is already the stable backend", spec.backend)));
        }
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
        self.record(actor, "deploy-canary", &d, json!({ "spec": spec })).await?;
        let generation = {
            let mut s = d.state.write();
            s.generation += 1;
            s.canary = Some(Canary {
                backend: i,
                spec: spec.clone(),
                step: 0,
                generation: s.generation,
            });
            s.status = "canary";
            s.last_change = format!("canary {} started by {actor} at {}%", spec.backend, spec.steps[0]);
            s.generation
        };
        // Each step is judged on its own traffic.
        d.backends[i].take();
        self.publish(&d);
        let me = self.clone();
        let dep = d.clone();
        tokio::spawn(async move { me.drive(dep, generation).await });
        Ok(d.view())
    }

    /// The canary controller: one analysis per interval until it is promoted, rolled back
    /// or replaced by another change (the generation moved on).
    async fn drive(self: Arc<Self>, d: Arc<Deployment>, generation: u64) {
        loop {
            let Some(c) = d.state.read().canary.clone().filter(|c| c.generation == generation) else {
                return;
            };
            tokio::time::sleep(Duration::from_secs_f64(c.spec.interval_secs)).await;
            let Some(c) = d.state.read().canary.clone().filter(|c| c.generation == generation) else {
                return;
            };
            let seen = d.backends[c.backend].take();
            let name = d.backends[c.backend].name.clone();
            let verdict = if seen.requests < c.spec.min_requests {
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
            match verdict {
                Some(reason) => {
                    // Roll back first: safety does not wait for the audit log.
                    {
                        let mut s = d.state.write();
                        if s.canary.as_ref().map(|c| c.generation) != Some(generation) {
                            return;
                        }
                        s.canary = None;
                        s.generation += 1;
                        s.status = "rolled-back";
                        s.last_change = format!("canary {name} rolled back at {weight}%: {reason}");
                    }
                    self.publish(&d);
                    tracing::warn!(model = %d.name, backend = %name, weight, %reason, "canary rolled back");
                    let rec = AuditRecord::new(
                        "palisade/gateway",
                        "deploy-rollback",
                        &d.name,
                        "ok",
                        json!({ "canary": name, "weight": weight, "reason": reason, "analysis": seen }),
                    );
                    if self.auditor.record(rec.clone()).await.is_err() {
                        self.auditor.refusal(rec);
                    }
                    return;
                }
                None => {
                    let last = c.step + 1 >= c.spec.steps.len();
                    let action = if last { "deploy-promote" } else { "deploy-canary-step" };
                    let next = if last { 100 } else { c.spec.steps[c.step + 1] };
                    let rec = AuditRecord::new(
                        "palisade/gateway",
                        action,
                        &d.name,
                        "ok",
                        json!({ "canary": name, "passed_weight": weight, "next_weight": next, "analysis": seen }),
                    );
                    if let Err(e) = self.auditor.record(rec).await {
                        // Do not advance an unrecorded step; try again next interval.
                        tracing::error!(model = %d.name, error = %e, "canary held: the audit log is unavailable");
                        continue;
                    }
                    {
                        let mut s = d.state.write();
                        let Some(cur) = s.canary.as_mut().filter(|c| c.generation == generation) else {
                            return;
                        };
                        if last {
                            let stable = s.stable;
                            s.previous = Some(stable);
                            s.stable = c.backend;
                            s.canary = None;
                            s.generation += 1;
                            s.status = "stable";
                            s.last_change = format!("canary {name} promoted after {} steps", c.spec.steps.len());
                        } else {
                            cur.step += 1;
                            s.last_change = format!("canary {name} advanced to {next}%");
                        }
                    }
                    self.publish(&d);
                    tracing::info!(model = %d.name, backend = %name, weight = next, promoted = last, "canary step passed");
                    if last {
                        return;
                    }
                }
            }
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
