//! `[gateway]` in `palisade.toml`: upstreams, models and their backends, rate limits,
//! request limits and the access log. Unknown keys are errors; every key is documented in
//! `docs/gateway.md` and `docs/palisade.example.toml`.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Request limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// LLM providers the gateway calls on the client's behalf (it holds their keys).
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// The models clients may call, each with one or more backends.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Request and token limits; every rule that matches a request must admit it.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitRule>,
    /// State shared by several replicas (`redis://127.0.0.1:6379`): rate-limit buckets and
    /// deployment state (rollouts, canary counts). In this process's memory when absent.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The first part of every Redis key, so that separate gateway fleets can share one
    /// Redis (`{prefix}:rl:…` for rate limits, `{prefix}:deploy:…` for deployments).
    #[serde(default = "default_prefix")]
    pub redis_prefix: String,
    /// With `redis_url`: how often a replica reads the shared deployment state and hands
    /// in its canary counts, in milliseconds. Canary steps are judged this long after
    /// their interval ends.
    #[serde(default = "default_sync")]
    pub deploy_sync_ms: u64,
    /// What to do when the shared rate-limit store cannot be reached.
    #[serde(default)]
    pub rate_limit_failure: FailureMode,
    /// How long an authenticated credential and its authorization decisions are reused
    /// before the credential store is asked again, in seconds (0: every request). Keys
    /// revoked through this process's registry are dropped at once.
    #[serde(default = "default_auth_cache")]
    pub auth_cache_secs: u64,
    #[serde(default)]
    pub access_log: AccessLogConfig,
    /// OpenTelemetry traces exported over OTLP/HTTP JSON; off without an endpoint.
    #[serde(default)]
    pub traces: crate::trace::TraceConfig,
    /// How often ONNX backends that follow a registry alias look for a new version, in
    /// seconds (0: never after start).
    #[serde(default = "default_refresh")]
    pub model_refresh_secs: u64,
}

fn default_auth_cache() -> u64 {
    10
}
/// The configuration of an absent `[gateway]` table: every key at its documented default.
impl Default for GatewayConfig {
    fn default() -> Self {
        match serde_json::from_value(serde_json::Value::Object(serde_json::Map::new())) {
            Ok(c) => c,
            // Every field has a serde default, so an empty table always deserializes.
            Err(e) => unreachable!("empty [gateway] table: {e}"),
        }
    }
}

fn default_prefix() -> String {
    "palisade".into()
}
fn default_sync() -> u64 {
    1000
}
fn default_refresh() -> u64 {
    15
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, in bytes.
    #[serde(default = "d_body")]
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects in a JSON body.
    #[serde(default = "d_depth")]
    pub max_json_depth: usize,
    /// Largest upstream response that is read whole (non-streaming), in bytes.
    #[serde(default = "d_response")]
    pub max_response_bytes: usize,
    /// Requests handled at once; beyond it requests are shed with 503 and `retry-after`.
    #[serde(default = "d_concurrency")]
    pub max_concurrency: usize,
    /// A whole non-streaming request (body, upstream call, answer), in seconds.
    #[serde(default = "d_request_timeout")]
    pub request_timeout_secs: u64,
    /// A request body that sends nothing for this long is cut off, in seconds.
    #[serde(default = "d_body_idle")]
    pub body_idle_secs: u64,
    /// Connecting to an upstream, in seconds.
    #[serde(default = "d_connect")]
    pub upstream_connect_secs: u64,
    /// A streaming upstream that sends nothing for this long is cut off, in seconds.
    #[serde(default = "d_stream_idle")]
    pub stream_idle_secs: u64,
    /// Largest `max_tokens` a request may ask for (reserved against token limits).
    #[serde(default = "d_max_tokens")]
    pub max_tokens: u64,
    /// Tokens reserved for a request that does not say `max_tokens`.
    #[serde(default = "d_default_max_tokens")]
    pub default_max_tokens: u64,
}

fn d_body() -> usize {
    4 << 20
}
fn d_depth() -> usize {
    64
}
fn d_response() -> usize {
    16 << 20
}
fn d_concurrency() -> usize {
    1024
}
fn d_request_timeout() -> u64 {
    120
}
fn d_body_idle() -> u64 {
    10
}
fn d_connect() -> u64 {
    5
}
fn d_stream_idle() -> u64 {
    60
}
fn d_max_tokens() -> u64 {
    32_768
}
fn d_default_max_tokens() -> u64 {
    1024
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: d_body(),
            max_json_depth: d_depth(),
            max_response_bytes: d_response(),
            max_concurrency: d_concurrency(),
            request_timeout_secs: d_request_timeout(),
            body_idle_secs: d_body_idle(),
            upstream_connect_secs: d_connect(),
            stream_idle_secs: d_stream_idle(),
            max_tokens: d_max_tokens(),
            default_max_tokens: d_default_max_tokens(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL of an OpenAI-compatible API, up to and including `/v1`
    /// (`https://api.openai.com/v1`). `http` only for loopback addresses unless
    /// `allow_http` is set.
    pub url: String,
    /// An environment variable holding the provider's key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A file holding the provider's key (mode 0600 recommended).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Allow plain `http` to a non-loopback host.
    #[serde(default)]
    pub allow_http: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A native ONNX model from the registry, served with the Open Inference Protocol v2.
    Onnx,
    /// An LLM behind an OpenAI-compatible upstream.
    Openai,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use (`/v2/models/{name}/infer`, or `"model"` in an OpenAI request).
    pub name: String,
    pub kind: ModelKind,
    /// Where requests can go. The first backend serves unless `active` names another.
    pub backends: Vec<BackendConfig>,
    /// The backend serving at start.
    #[serde(default)]
    pub active: Option<String>,
    /// A backend that receives a copy of every request; its answers are compared and
    /// logged, never returned.
    #[serde(default)]
    pub shadow: Option<String>,
    /// Largest batch (first dimension) an ONNX request may send.
    #[serde(default = "d_batch")]
    pub max_batch: usize,
    /// Refuse ONNX inputs outside the attached data profile's per-feature range.
    #[serde(default = "d_true")]
    pub enforce_profile: bool,
    /// Guardrails on prompts and responses (OpenAI models).
    #[serde(default)]
    pub guard: ModelGuard,
    /// What the access log records of request bodies for this model.
    #[serde(default)]
    pub body_log: Option<BodyLog>,
}

fn d_batch() -> usize {
    64
}
fn d_true() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGuard {
    /// Check user and tool messages before they reach the model.
    #[serde(default = "d_true")]
    pub input: bool,
    /// Check answers, streamed or not, before they reach the client.
    #[serde(default = "d_true")]
    pub output: bool,
    /// This model's actions, over `[guard]`'s: `block`, `redact`, `flag` or `off`.
    #[serde(default)]
    pub injection: Option<palisade_guard::Action>,
    #[serde(default)]
    pub pii: Option<palisade_guard::Action>,
    #[serde(default)]
    pub secrets: Option<palisade_guard::Action>,
    #[serde(default)]
    pub html: Option<palisade_guard::Action>,
    #[serde(default)]
    pub markdown_exfiltration: Option<palisade_guard::Action>,
    /// Hosts this model's answers may link to, instead of `guard.output.allowed_domains`.
    #[serde(default)]
    pub allowed_domains: Option<Vec<String>>,
}

impl Default for ModelGuard {
    fn default() -> Self {
        ModelGuard {
            input: true,
            output: true,
            injection: None,
            pii: None,
            secrets: None,
            html: None,
            markdown_exfiltration: None,
            allowed_domains: None,
        }
    }
}

impl ModelGuard {
    /// `base` with this model's overrides, or `None` when it has none.
    pub fn apply(&self, base: &palisade_guard::GuardConfig) -> Option<palisade_guard::GuardConfig> {
        let any = self.injection.is_some()
            || self.pii.is_some()
            || self.secrets.is_some()
            || self.html.is_some()
            || self.markdown_exfiltration.is_some()
            || self.allowed_domains.is_some();
        if !any {
            return None;
        }
        let mut c = base.clone();
        if let Some(a) = self.injection {
            c.injection.action = a;
        }
        if let Some(a) = self.pii {
            c.pii.action = a;
        }
        if let Some(a) = self.secrets {
            c.secrets.action = a;
        }
        if let Some(a) = self.html {
            c.output.html.action = a;
        }
        if let Some(a) = self.markdown_exfiltration {
            c.output.markdown_exfiltration.action = a;
        }
        if let Some(d) = &self.allowed_domains {
            c.output.allowed_domains = d.clone();
        }
        Some(c)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// A short name (`blue`, `green`, `v2-candidate`) used by deployments and metrics.
    pub name: String,
    /// ONNX: the registry model (default: the gateway model's name).
    #[serde(default)]
    pub registry_model: Option<String>,
    /// ONNX: follow this registry alias (default `production` when no version is given).
    #[serde(default)]
    pub alias: Option<String>,
    /// ONNX: a fixed registry version.
    #[serde(default)]
    pub version: Option<u64>,
    /// OpenAI: the `[[gateway.upstreams]]` entry.
    #[serde(default)]
    pub upstream: Option<String>,
    /// OpenAI: the model name sent upstream (default: the gateway model's name).
    #[serde(default)]
    pub upstream_model: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse requests (503) while the limiter is unavailable.
    #[default]
    Closed,
    /// Admit requests without limits while the limiter is unavailable.
    Open,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One bucket per credential (API key id or token subject).
    Key,
    /// One bucket per team (`team:<name>` entries of the caller's roles); callers with
    /// no team are not limited by this rule.
    Team,
    /// One bucket per model, shared by every caller.
    Model,
    /// One bucket per credential and model.
    KeyModel,
    /// One bucket for everything the rule matches.
    Global,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Names the rule in headers, metrics and audit events.
    pub name: String,
    pub scope: Scope,
    /// Models the rule applies to (`*`: all).
    #[serde(default = "d_all")]
    pub models: Vec<String>,
    /// Requests per window.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Tokens (prompt + completion) per window; `max_tokens` is reserved before the call
    /// and the difference settled after it.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// The window, in seconds: the bucket refills fully over it.
    #[serde(default = "d_window")]
    pub window_secs: u64,
}

fn d_all() -> Vec<String> {
    vec!["*".to_owned()]
}
fn d_window() -> u64 {
    60
}

impl RateLimitRule {
    pub fn applies_to(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyLog {
    /// Nothing of the body.
    None,
    /// Its SHA-256 and size.
    #[default]
    Hash,
    /// The body with personal data and secrets masked (the guard's detectors).
    Redacted,
    /// The body as sent (up to 64 KiB). Use only where policy allows.
    Full,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// One JSON line per request on stderr (target `palisade::access`).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Body policy for models that do not set `body_log`.
    #[serde(default)]
    pub body: BodyLog,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            body: BodyLog::Hash,
        }
    }
}

/// A configuration that cannot work, found before the server starts.
#[derive(Debug, thiserror::Error)]
#[error("[gateway] {0}")]
pub struct ConfigError(pub String);

impl GatewayConfig {
    /// Checks references between sections (backends → upstreams, names, limits).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        self.traces.validate().map_err(ConfigError)?;
        if !(50..=60_000).contains(&self.deploy_sync_ms) {
            return err(format!("deploy_sync_ms must be 50-60000, got {}", self.deploy_sync_ms));
        }
        let prefix_ok = !self.redis_prefix.is_empty()
            && self.redis_prefix.len() <= 64
            && self
                .redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !prefix_ok {
            return err(format!(
                "redis_prefix must be 1-64 characters of letters, digits and -_.:, got {:?}",
                self.redis_prefix
            ));
        }
        let mut upstreams = HashSet::new();
        for u in &self.upstreams {
            if !upstreams.insert(u.name.as_str()) {
                return err(format!("upstream `{}` is defined twice", u.name));
            }
            let url = u.url.trim_end_matches('/');
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let host = rest.split(['/', ':']).next().unwrap_or("");
            let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
            match scheme {
                "https" => {}
                "http" if loopback || u.allow_http => {}
                "http" => {
                    return err(format!(
                        "upstream `{}`: plain http to {host} would send the provider key unencrypted; use https or set allow_http = true",
                        u.name
                    ))
                }
                _ => return err(format!("upstream `{}`: url must be http(s)://…, got {:?}", u.name, u.url)),
            }
            if u.api_key_env.is_some() && u.api_key_file.is_some() {
                return err(format!(
                    "upstream `{}`: set api_key_env or api_key_file, not both",
                    u.name
                ));
            }
        }
        let mut models = HashSet::new();
        for m in &self.models {
            if m.name.is_empty() || m.name.len() > 128 || m.name.chars().any(|c| c.is_control() || c == '/') {
                return err(format!("model name {:?}: 1-128 characters, no `/`", m.name));
            }
            if !models.insert(m.name.as_str()) {
                return err(format!("model `{}` is defined twice", m.name));
            }
            if m.backends.is_empty() {
                return err(format!("model `{}` needs at least one backend", m.name));
            }
            let mut names = HashSet::new();
            for b in &m.backends {
                if !names.insert(b.name.as_str()) {
                    return err(format!("model `{}`: backend `{}` is defined twice", m.name, b.name));
                }
                match m.kind {
                    ModelKind::Onnx => {
                        if b.upstream.is_some() || b.upstream_model.is_some() {
                            return err(format!(
                                "model `{}` backend `{}`: upstream settings on an onnx model",
                                m.name, b.name
                            ));
                        }
                        if b.alias.is_some() && b.version.is_some() {
                            return err(format!(
                                "model `{}` backend `{}`: set alias or version, not both",
                                m.name, b.name
                            ));
                        }
                    }
                    ModelKind::Openai => {
                        let Some(u) = &b.upstream else {
                            return err(format!("model `{}` backend `{}` needs `upstream`", m.name, b.name));
                        };
                        if !upstreams.contains(u.as_str()) {
                            return err(format!(
                                "model `{}` backend `{}`: no upstream named `{u}`",
                                m.name, b.name
                            ));
                        }
                        if b.registry_model.is_some() || b.alias.is_some() || b.version.is_some() {
                            return err(format!(
                                "model `{}` backend `{}`: registry settings on an openai model",
                                m.name, b.name
                            ));
                        }
                    }
                }
            }
            for (what, v) in [("active", &m.active), ("shadow", &m.shadow)] {
                if let Some(v) = v {
                    if !names.contains(v.as_str()) {
                        return err(format!("model `{}`: {what} names no backend `{v}`", m.name));
                    }
                }
            }
            if m.shadow.is_some() && m.shadow == m.active.clone().or_else(|| m.backends.first().map(|b| b.name.clone()))
            {
                return err(format!("model `{}`: the shadow backend is the active one", m.name));
            }
            if m.max_batch == 0 {
                return err(format!("model `{}`: max_batch must be at least 1", m.name));
            }
        }
        let mut rules = HashSet::new();
        for r in &self.rate_limits {
            if !rules.insert(r.name.as_str()) {
                return err(format!("rate limit `{}` is defined twice", r.name));
            }
            if r.requests.is_none() && r.tokens.is_none() {
                return err(format!("rate limit `{}` limits neither requests nor tokens", r.name));
            }
            if r.requests == Some(0) || r.tokens == Some(0) || r.window_secs == 0 {
                return err(format!("rate limit `{}`: limits and window must be positive", r.name));
            }
        }
        let l = &self.limits;
        if l.max_concurrency == 0 || l.max_body_bytes == 0 || l.max_json_depth == 0 {
            return err("limits must be positive".into());
        }
        if l.default_max_tokens > l.max_tokens {
            return err("limits.default_max_tokens is larger than limits.max_tokens".into());
        }
        Ok(())
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_default_is_the_documented_defaults_and_valid() {
        let d = GatewayConfig::default();
        d.validate().unwrap();
        assert_eq!(d.redis_prefix, "palisade");
        assert_eq!(d.deploy_sync_ms, 1000);
        assert_eq!(d.auth_cache_secs, 10);
        assert_eq!(d.model_refresh_secs, 15);
        let parsed: GatewayConfig = toml::from_str("").unwrap();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::to_value(&parsed).unwrap()
        );
    }

    use super::*;

    fn parse(s: &str) -> Result<GatewayConfig, String> {
        let c: GatewayConfig = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    const UP: &str = "[[upstreams]]\nname = \"mock\"\nurl = \"http://127.0.0.1:9/v1\"\n";

    #[test]
    fn configs_that_cannot_work_are_refused() {
        let cases = [
            (
                "[[upstreams]]\nname = \"a\"\nurl = \"http://api.example.com/v1\"\n",
                "unencrypted",
            ),
            ("[[upstreams]]\nname = \"a\"\nurl = \"ftp://x\"\n", "http(s)"),
            ("unknown = 1\n", "unknown field"),
            (
                "[[models]]\nname = \"m\"\nkind = \"openai\"\n[[models.backends]]\nname = \"b\"\nupstream = \"nope\"\n",
                "no upstream named",
            ),
            (
                "[[models]]\nname = \"m\"\nkind = \"onnx\"\nbackends = []\n",
                "at least one backend",
            ),
            (
                "[[models]]\nname = \"m\"\nkind = \"onnx\"\nactive = \"x\"\n[[models.backends]]\nname = \"b\"\n",
                "active names no backend",
            ),
            (
                "[[models]]\nname = \"m\"\nkind = \"onnx\"\nshadow = \"b\"\n[[models.backends]]\nname = \"b\"\n",
                "shadow backend is the active one",
            ),
            (
                "[[rate_limits]]\nname = \"r\"\nscope = \"key\"\n",
                "neither requests nor tokens",
            ),
            (
                "[[rate_limits]]\nname = \"r\"\nscope = \"key\"\nrequests = 0\n",
                "positive",
            ),
            (
                "[[rate_limits]]\nname = \"r\"\nscope = \"planet\"\nrequests = 1\n",
                "unknown variant",
            ),
        ];
        for (text, want) in cases {
            let text = format!("{UP}{text}");
            let got = parse(&text).err().unwrap_or_default();
            assert!(got.contains(want), "{text}\n→ {got:?}, wanted {want:?}");
        }
    }

    #[test]
    fn a_complete_config_parses() {
        let c = parse(&format!(
            "{UP}[[models]]\nname = \"chat\"\nkind = \"openai\"\nshadow = \"green\"\n[[models.backends]]\nname = \"blue\"\nupstream = \"mock\"\n[[models.backends]]\nname = \"green\"\nupstream = \"mock\"\nupstream_model = \"other\"\n[[rate_limits]]\nname = \"per-key\"\nscope = \"key\"\nrequests = 10\ntokens = 1000\n"
        ))
        .unwrap();
        assert_eq!(c.models[0].backends[1].upstream_model.as_deref(), Some("other"));
        assert!(c.rate_limits[0].applies_to("anything"));
        assert_eq!(c.limits.max_json_depth, 64);
    }
}
