//! Calls to OpenAI-compatible upstreams (hyper, connection pooling, rustls for https).
//! The gateway holds the provider keys: the client's `Authorization` never goes upstream,
//! and only a short list of request headers is forwarded.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::UpstreamConfig;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Most connection pools kept: one per server thread, up to this many.
const MAX_POOLS: usize = 64;

/// Upstream clients: one connection pool per server thread
/// ([`crate::server::worker_index`]), created on the thread's first call, so that with
/// per-thread serving a request and its upstream connection live on the same thread.
/// Every other thread (a work-stealing runtime, background tasks, tests) uses pool 0.
pub struct Clients {
    connector: hyper_rustls::HttpsConnector<HttpConnector>,
    pools: Box<[std::sync::OnceLock<HttpClient>]>,
}

impl Clients {
    pub fn new(connect_timeout: Duration) -> Result<Clients, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Clients {
            connector,
            pools: (0..MAX_POOLS).map(|_| std::sync::OnceLock::new()).collect(),
        })
    }

    /// This thread's client.
    pub fn get(&self) -> &HttpClient {
        let slot = &self.pools[crate::server::worker_index() % MAX_POOLS];
        slot.get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .build(self.connector.clone())
        })
    }
}

pub struct Upstream {
    pub name: String,
    base: String,
    key: Option<HeaderValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{0}` did not answer in time")]
    Timeout(String),
    #[error("upstream `{0}` is unreachable")]
    Connect(String, #[source] hyper_util::client::legacy::Error),
    #[error("upstream `{0}`: bad request: {1}")]
    Build(String, String),
}

impl Upstream {
    /// Reads the provider key from the environment or a file; a configured source that
    /// is missing is an error at start (not a surprise at the first request).
    pub fn from_config(c: &UpstreamConfig) -> Result<Upstream, String> {
        let key = match (&c.api_key_env, &c.api_key_file) {
            (Some(var), _) => Some(
                std::env::var(var)
                    .map_err(|_| format!("upstream `{}`: environment variable {var} is not set", c.name))?,
            ),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("upstream `{}`: cannot read {}: {e}", c.name, path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let key = match key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| format!("upstream `{}`: the key is not a valid header value", c.name))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            name: c.name.clone(),
            base: c.url.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// POSTs a JSON body to `{url}{path}` and returns the response head (the body streams).
    pub async fn post(
        &self,
        client: &HttpClient,
        path: &str,
        body: Bytes,
        stream: bool,
        timeout: Duration,
        traceparent: Option<&str>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut req = Request::post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Build(self.name.clone(), e.to_string()))?;
        if let Some(k) = &self.key {
            req.headers_mut().insert(AUTHORIZATION, k.clone());
        }
        if let Some(t) = traceparent.and_then(|t| hyper::header::HeaderValue::from_str(t).ok()) {
            req.headers_mut().insert("traceparent", t);
        }
        match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.name.clone())),
            Ok(Err(e)) => Err(UpstreamError::Connect(self.name.clone(), e)),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// Reads a whole body, refusing more than `max` bytes or a body that stalls past `idle`.
pub async fn read_body(body: Incoming, max: usize, idle: Duration) -> Result<Bytes, String> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err("the upstream stopped sending".into()),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(format!("upstream body: {e}")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(format!("the upstream's answer is larger than {max} bytes"));
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}
