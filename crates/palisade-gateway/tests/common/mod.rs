//! Test harness: a gateway built from a TOML config over in-memory API keys, a model
//! source reading the committed ONNX fixtures, an in-memory audit sink, and the mock
//! OpenAI upstream on a real loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use palisade_auth::{ApiKeyStore, Authenticator, BoxFuture, Policy, StoredKey};
use palisade_gateway::audit::MemorySink;
use palisade_gateway::mock::MockState;
use palisade_gateway::source::{ModelSource, Selector, SourceVersion};
use palisade_gateway::{Gateway, Parts};
use serde_json::Value;
use tower::ServiceExt as _;

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// API keys in memory: name → (token, stored key).
#[derive(Default)]
pub struct Keys(pub parking_lot::Mutex<HashMap<String, StoredKey>>);

impl ApiKeyStore for Keys {
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredKey>, String>> {
        let k = self.0.lock().get(id).cloned();
        Box::pin(async move { Ok(k) })
    }
}

impl Keys {
    /// A new key with these roles; returns `(id, token)`.
    pub fn add(&self, subject: &str, roles: &[&str]) -> (String, String) {
        let (id, digest, token) = palisade_auth::apikey::generate();
        self.0.lock().insert(
            id.clone(),
            StoredKey {
                subject: subject.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                secret_sha256: digest,
                revoked: false,
            },
        );
        (id, token)
    }

    pub fn revoke(&self, id: &str) {
        if let Some(k) = self.0.lock().get_mut(id) {
            k.revoked = true;
        }
    }
}

type Files = Vec<(String, Vec<u8>)>;

/// Registry versions backed by fixture files: `(model, version)` → files; aliases.
#[derive(Default)]
pub struct Fixtures {
    pub versions: parking_lot::Mutex<HashMap<(String, u64), Files>>,
    pub aliases: parking_lot::Mutex<HashMap<(String, String), u64>>,
}

impl Fixtures {
    pub fn add(&self, model: &str, version: u64, files: &[(&str, &str)]) {
        let files = files.iter().map(|(path, fx)| (path.to_string(), fixture(fx))).collect();
        self.versions.lock().insert((model.into(), version), files);
    }
    pub fn alias(&self, model: &str, alias: &str, version: u64) {
        self.aliases.lock().insert((model.into(), alias.into()), version);
    }
}

impl ModelSource for Fixtures {
    fn resolve<'a>(&'a self, model: &'a str, selector: &'a Selector) -> BoxFuture<'a, Result<SourceVersion, String>> {
        let version = match selector {
            Selector::Alias(a) => self.aliases.lock().get(&(model.to_owned(), a.clone())).copied(),
            Selector::Version(v) => Some(*v),
        };
        let found = version.and_then(|v| {
            self.versions
                .lock()
                .get(&(model.to_owned(), v))
                .map(|files| SourceVersion {
                    version: v,
                    digest: format!("sha256:{v:064x}"),
                    files: files.iter().map(|(p, b)| (p.clone(), b.len() as u64)).collect(),
                })
        });
        Box::pin(async move { found.ok_or_else(|| "not found".to_owned()) })
    }
    fn read<'a>(
        &'a self,
        model: &'a str,
        version: u64,
        path: &'a str,
        max: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        let found = self
            .versions
            .lock()
            .get(&(model.to_owned(), version))
            .and_then(|files| files.iter().find(|(p, _)| p == path).map(|(_, b)| b.clone()));
        Box::pin(async move {
            let b = found.ok_or_else(|| "no such file".to_owned())?;
            if b.len() as u64 > max {
                return Err("too large".into());
            }
            Ok(b)
        })
    }
}

pub struct Harness {
    pub gw: Arc<Gateway>,
    pub app: axum::Router,
    pub keys: Arc<Keys>,
    pub audit: Arc<MemorySink>,
    pub mock: Arc<MockState>,
    pub mock_addr: std::net::SocketAddr,
    pub source: Arc<Fixtures>,
}

pub const PROVIDER_KEY: &str = "sk-provider-secret-0123456789";

/// A gateway from `config` (TOML; `MOCK` is replaced by the mock upstream's URL), with
/// the iris fixture as `iris` versions 1 and 2 (alias `production` → 1) and
/// `multi_input` version 1.
pub async fn harness(config: &str) -> Harness {
    let mock = MockState::new("mock-a", Some(PROVIDER_KEY));
    let mock_addr = palisade_gateway::mock::spawn(mock.clone(), 0).await.unwrap();
    let config = config.replace("MOCK", &format!("http://{mock_addr}/v1"));
    // SAFETY of the environment: each test binary sets the same value.
    std::env::set_var("PALISADE_TEST_PROVIDER_KEY", PROVIDER_KEY);
    let config: palisade_gateway::config::GatewayConfig = toml::from_str(&config).unwrap();
    let source = Arc::new(Fixtures::default());
    source.add(
        "iris",
        1,
        &[
            ("model.onnx", "iris_mlp.onnx"),
            ("iris.profile.json", "iris_mlp.profile.json"),
        ],
    );
    source.add("iris", 2, &[("model.onnx", "iris_mlp.onnx")]);
    source.alias("iris", "production", 1);
    source.add("multi", 1, &[("m/multi_input.onnx", "multi_input.onnx")]);
    let keys = Arc::new(Keys::default());
    let audit = Arc::new(MemorySink::default());
    let gw = Gateway::new(
        config,
        Parts {
            authenticator: Authenticator::new(Some(keys.clone()), None),
            policy: Arc::new(Policy::builtin().unwrap()),
            source: Some(source.clone()),
            audit: audit.clone(),
            guard: Some(palisade_guard::GuardConfig::default()),
        },
    )
    .unwrap();
    gw.start().await;
    let app = palisade_gateway::router(gw.clone());
    Harness {
        gw,
        app,
        keys,
        audit,
        mock,
        mock_addr,
        source,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap().to_vec();
        Reply { status, headers, body }
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(token), Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    /// Audit events so far (after the refusal queue drained).
    pub async fn events(&self) -> Vec<palisade_gateway::audit::AuditRecord> {
        self.gw.auditor.flush().await;
        self.audit.0.lock().clone()
    }
}

/// The data rows of an SSE body, `[DONE]` included.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The assistant text a chat-completion SSE stream carries.
pub fn sse_content(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .flat_map(|v| {
            v["choices"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c["delta"]["content"].as_str().or(c["text"].as_str()).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The machine's Redis (127.0.0.1:6379; `PALISADE_TEST_REDIS` overrides).
pub fn redis_url() -> String {
    std::env::var("PALISADE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// Fails loudly, with the command that starts it, when Redis is down.
pub async fn require_redis() {
    let client = redis::Client::open(redis_url()).unwrap();
    let conn = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await;
    match conn {
        Ok(Ok(mut c)) => {
            let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
            assert_eq!(pong, "PONG");
        }
        _ => panic!(
            "Redis at {} is not reachable; start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no",
            redis_url()
        ),
    }
}

/// A name (rule, key prefix) no earlier run used: Redis keys embed it.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
