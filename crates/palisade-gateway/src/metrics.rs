//! Prometheus metrics (`GET /metrics`, OpenMetrics text), through `prometheus-client`.
//! Label values come from the configuration (model and backend names, rule names, route
//! templates) or from fixed sets, never from what a client sends, so a client cannot grow
//! the number of series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: &'static str,
    pub model: String,
    pub backend: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiModel {
    pub api: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelBackend {
    pub model: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rule {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Detection {
    pub code: String,
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Tokens {
    pub model: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Shadow {
    pub model: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Mode {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutState {
    pub model: String,
    pub state: &'static str,
}

type Hist = Family<ApiModel, Histogram, fn() -> Histogram>;
type BackendHist = Family<ModelBackend, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 100 µs … ~26 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Hist,
    pub upstream_duration: BackendHist,
    pub denied: Family<Reason, Counter>,
    pub rate_limited: Family<Rule, Counter>,
    pub limiter_errors: Family<Mode, Counter>,
    pub detections: Family<Detection, Counter>,
    pub tokens: Family<Tokens, Counter>,
    pub inflight: Gauge,
    pub rollout_weight: Family<ModelBackend, Gauge>,
    pub rollout_state: Family<RolloutState, Gauge>,
    pub shadow: Family<Shadow, Counter>,
    pub model_loads: Family<ModelBackend, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by API, model, backend and status",
            requests.clone(),
        );
        let duration: Hist = Family::new_with_constructor(latency);
        registry.register(
            "request_duration_seconds",
            "Time from request to the end of the answer's head",
            duration.clone(),
        );
        let upstream_duration: BackendHist = Family::new_with_constructor(latency);
        registry.register(
            "backend_duration_seconds",
            "Time a backend (upstream or ONNX model) took, by model and backend",
            upstream_duration.clone(),
        );
        let denied = Family::<Reason, Counter>::default();
        registry.register("denied", "Requests refused, by reason", denied.clone());
        let rate_limited = Family::<Rule, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by rule",
            rate_limited.clone(),
        );
        let limiter_errors = Family::<Mode, Counter>::default();
        registry.register(
            "rate_limit_store_errors",
            "Rate-limit store failures, by how they were handled (open: admitted, closed: refused)",
            limiter_errors.clone(),
        );
        let detections = Family::<Detection, Counter>::default();
        registry.register(
            "guard_detections",
            "Guardrail detections, by rule and phase",
            detections.clone(),
        );
        let tokens = Family::<Tokens, Counter>::default();
        registry.register(
            "tokens",
            "LLM tokens, by model and kind (prompt, completion)",
            tokens.clone(),
        );
        let inflight = Gauge::default();
        registry.register("inflight_requests", "Requests being handled", inflight.clone());
        let rollout_weight = Family::<ModelBackend, Gauge>::default();
        registry.register(
            "rollout_weight_percent",
            "Share of a model's traffic each backend gets",
            rollout_weight.clone(),
        );
        let rollout_state = Family::<RolloutState, Gauge>::default();
        registry.register(
            "rollout_state",
            "1 for a model's current deployment state (stable, canary, rolled-back)",
            rollout_state.clone(),
        );
        let shadow = Family::<Shadow, Counter>::default();
        registry.register(
            "shadow_comparisons",
            "Shadow requests, by result (match, mismatch, error, skipped)",
            shadow.clone(),
        );
        let model_loads = Family::<ModelBackend, Counter>::default();
        registry.register("model_loads", "ONNX model versions loaded", model_loads.clone());
        Metrics {
            registry,
            requests,
            duration,
            upstream_duration,
            denied,
            rate_limited,
            limiter_errors,
            detections,
            tokens,
            inflight,
            rollout_weight,
            rollout_state,
            shadow,
            model_loads,
        }
    }

    pub fn deny(&self, reason: &'static str) {
        self.denied.get_or_create(&Reason { reason }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
