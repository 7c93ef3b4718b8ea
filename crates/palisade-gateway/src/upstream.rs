//! Calls to OpenAI-compatible upstreams: HTTP/1.1 on hyper's connection API, rustls for
//! https, and a pool of kept-alive connections per upstream. The gateway holds the
//! provider keys: the client's `Authorization` never goes upstream, and only a short list
//! of request headers is forwarded.
//!
//! A connection is not a task of its own. The request that borrows it drives it (polls
//! hyper's `Connection` future beside its own), and so does the body of the answer until
//! its last byte, which then puts the connection back in the pool. A call therefore needs
//! no hand-off between tasks — the request's task writes the request and is the one woken
//! when the answer arrives — which a pooled client with a task per connection (hyper-util's)
//! costs at least twice a call.

use std::collections::VecDeque;
use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::UpstreamConfig;

/// A pooled client (hyper-util's), for callers that are not on the request path (the
/// trace exporter).
pub type HttpClient = Client<Connector, Full<Bytes>>;
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Io = hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
/// hyper's half of a connection, which reads and writes it when polled.
type Driver = http1::Connection<Io, Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most connection pools kept: one per server thread, up to this many.
const MAX_POOLS: usize = 64;
/// Idle connections kept per upstream and pool; one more is closed when it comes back.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What every upstream call shares: the connector (TCP, TLS roots) and a hyper-util
/// client for the trace exporter.
pub struct Clients {
    connector: Connector,
    client: HttpClient,
}

impl Clients {
    pub fn new(connect_timeout: Duration) -> Result<Clients, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector.clone());
        Ok(Clients { connector, client })
    }

    /// A pooled client with a task per connection.
    pub fn get(&self) -> &HttpClient {
        &self.client
    }
}

pub struct Upstream {
    pub name: String,
    /// Where connections go: scheme and authority only.
    origin: Uri,
    /// The `Host` header.
    host: HeaderValue,
    /// The base URL's path, without a trailing `/`; the API path is appended to it.
    base_path: String,
    key: Option<HeaderValue>,
    pool: Arc<Pool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{0}` did not answer in time")]
    Timeout(String),
    #[error("upstream `{0}` is unreachable")]
    Connect(String, #[source] BoxError),
    #[error("upstream `{0}` broke off the call: {1}")]
    Broken(String, #[source] hyper::Error),
    #[error("upstream `{0}`: bad request: {1}")]
    Build(String, String),
}

impl Upstream {
    /// Reads the provider key from the environment or a file; a configured source that
    /// is missing is an error at start (not a surprise at the first request), and so is
    /// a URL that is not `http(s)://host[:port][/path]`.
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
        let (origin, host, base_path) = split_url(&c.url).map_err(|e| format!("upstream `{}`: url: {e}", c.name))?;
        Ok(Upstream {
            name: c.name.clone(),
            origin,
            host,
            base_path,
            key,
            pool: Arc::new(Pool::new()),
        })
    }

    /// POSTs a JSON body to `{url}{path}` and returns the response head (the body streams,
    /// and drives the connection while it is read).
    pub async fn post(
        &self,
        clients: &Clients,
        path: &str,
        body: Bytes,
        stream: bool,
        timeout: Duration,
        traceparent: Option<&str>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut req = Request::post(format!("{}{path}", self.base_path))
            .header(HOST, self.host.clone())
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
        if let Some(t) = traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
            req.headers_mut().insert("traceparent", t);
        }
        match tokio::time::timeout(timeout, self.call(clients, req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.name.clone())),
            Ok(r) => r,
        }
    }

    /// Sends on an idle connection from the pool, or on a new one; a request that a pooled
    /// connection could not take (the upstream had closed it) is sent again on a new one.
    async fn call(
        &self,
        clients: &Clients,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut req = req;
        loop {
            let (mut conn, fresh) = match self.pool.checkout().await {
                Some(c) => (c, false),
                None => (self.connect(clients).await?, true),
            };
            match conn.send(req).await {
                Ok(resp) => {
                    let pool = self.pool.clone();
                    return Ok(resp.map(|inner| UpstreamBody {
                        inner,
                        lease: Some((conn, pool)),
                    }));
                }
                Err((Some(back), _)) if !fresh => req = back,
                Err((_, e)) => return Err(UpstreamError::Broken(self.name.clone(), e)),
            }
        }
    }

    async fn connect(&self, clients: &Clients) -> Result<Conn, UpstreamError> {
        let io = tower::ServiceExt::oneshot(clients.connector.clone(), self.origin.clone())
            .await
            .map_err(|e| UpstreamError::Connect(self.name.clone(), e))?;
        let (send, conn) = http1::Builder::new()
            .handshake::<Io, Full<Bytes>>(io)
            .await
            .map_err(|e| UpstreamError::Connect(self.name.clone(), e.into()))?;
        Ok(Conn {
            send,
            conn: Some(Box::pin(conn)),
            since: Instant::now(),
        })
    }
}

/// `http(s)://host[:port][/path]` → (origin, `Host` header, path without trailing `/`).
fn split_url(url: &str) -> Result<(Uri, HeaderValue, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
    }
    let authority = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{url}`: credentials in the URL are not supported (use api_key_env or api_key_file)"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a query string is not supported"));
    }
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| format!("`{url}`: {e}"))?;
    let origin = Uri::builder()
        .scheme(uri.scheme_str().unwrap_or("http"))
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| format!("`{url}`: {e}"))?;
    Ok((origin, host, uri.path().trim_end_matches('/').to_owned()))
}

/// One HTTP/1.1 connection: hyper's sender, and its connection future, which whoever
/// holds the connection polls ([`Conn::drive`]); `None` once that future has ended.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    conn: Option<Pin<Box<Driver>>>,
    since: Instant,
}

impl Conn {
    /// Lets the connection do what it can (write the request, read the answer, notice
    /// that the upstream closed it). Ending drops it, which closes the sender.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(c) = &mut self.conn {
            if let Poll::Ready(r) = c.as_mut().poll(cx) {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
                self.conn = None;
            }
        }
    }

    fn alive(&self) -> bool {
        self.conn.is_some() && !self.send.is_closed()
    }

    /// Sends a request and waits for the answer's head, driving the connection; on an
    /// error, the request comes back if it was not sent.
    async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, (Option<Request<Full<Bytes>>>, hyper::Error)> {
        // Driving first moves the connection's wake-ups to this task.
        if let Err(e) = poll_fn(|cx| {
            self.drive(cx);
            self.send.poll_ready(cx)
        })
        .await
        {
            return Err((Some(req), e));
        }
        let mut answer = std::pin::pin!(self.send.try_send_request(req));
        poll_fn(|cx| {
            self.drive(cx);
            answer.as_mut().poll(cx)
        })
        .await
        .map_err(|mut e| (e.take_message(), e.into_error()))
    }
}

/// Idle connections, one list per server thread ([`crate::server::worker_index`]) so that
/// with per-thread serving a connection is reused on the thread that made it.
struct Pool {
    shards: Box<[Mutex<VecDeque<Conn>>]>,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            shards: (0..MAX_POOLS).map(|_| Mutex::new(VecDeque::new())).collect(),
        }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, VecDeque<Conn>> {
        let s = &self.shards[crate::server::worker_index() % MAX_POOLS];
        s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used idle connection that is still open.
    async fn checkout(&self) -> Option<Conn> {
        loop {
            let mut c = self.shard().pop_back()?;
            if c.since.elapsed() > IDLE_TIMEOUT {
                // The newest is too old, so are the rest.
                self.shard().clear();
                return None;
            }
            // One poll notices a close the upstream sent while the connection sat idle.
            poll_fn(|cx| {
                c.drive(cx);
                Poll::Ready(())
            })
            .await;
            if c.alive() {
                return Some(c);
            }
        }
    }

    fn checkin(&self, mut c: Conn) {
        if !c.alive() {
            return;
        }
        c.since = Instant::now();
        let mut idle = self.shard();
        while idle.front().is_some_and(|o| o.since.elapsed() > IDLE_TIMEOUT) {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(c);
        }
    }
}

/// The body of an upstream answer. Reading it drives the connection it arrives on; its
/// end puts the connection back in the pool, and dropping it sooner closes the connection.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<(Conn, Arc<Pool>)>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("inner", &self.inner)
            .field("pooled", &self.lease.is_some())
            .finish()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some((c, _)) = &mut this.lease {
            c.drive(cx);
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            if let Some((c, pool)) = this.lease.take() {
                pool.checkin(c);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a whole body, refusing more than `max` bytes or a body that stalls past `idle`.
pub async fn read_body(body: UpstreamBody, max: usize, idle: Duration) -> Result<Bytes, String> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A hand-written HTTP/1.1 upstream on 127.0.0.1: answers each request with its own
    /// request line and `Host` header as the body (chunked in two parts, the second `|end`,
    /// when the path has `/stream`), and closes the connection after each
    /// answer when `close_after` is set (without saying so, as an idle timeout would).
    /// Counts the connections it accepts.
    async fn upstream(close_after: bool) -> (Upstream, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + len);
                        let line = head.lines().next().unwrap_or_default();
                        let host = head.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or("-");
                        let answer = format!("{line}|{host}");
                        let sent = if line.contains("/stream") {
                            // Chunked, in two writes apart, as an SSE stream arrives.
                            let first = format!(
                                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{answer}\r\n",
                                answer.len()
                            );
                            let ok = sock.write_all(first.as_bytes()).await.is_ok();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            ok && sock.write_all(b"4\r\n|end\r\n0\r\n\r\n").await.is_ok()
                        } else {
                            let out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}", answer.len());
                            sock.write_all(out.as_bytes()).await.is_ok()
                        };
                        if !sent || close_after {
                            return;
                        }
                    }
                });
            }
        });
        let cfg = config("test", format!("http://{addr}/v1/"));
        (Upstream::from_config(&cfg).unwrap(), accepted)
    }

    fn config(name: &str, url: String) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url,
            api_key_env: None,
            api_key_file: None,
            allow_http: false,
        }
    }

    async fn post(u: &Upstream, clients: &Clients, path: &str) -> Result<Response<UpstreamBody>, UpstreamError> {
        u.post(
            clients,
            path,
            Bytes::from_static(b"{}"),
            false,
            Duration::from_secs(5),
            None,
        )
        .await
    }

    async fn call(u: &Upstream, clients: &Clients) -> String {
        let resp = post(u, clients, "/chat/completions").await.unwrap();
        let body = read_body(resp.into_body(), 1 << 20, Duration::from_secs(5))
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn calls_in_turn_share_one_connection_with_origin_form_requests() {
        let (u, accepted) = upstream(false).await;
        let clients = Clients::new(Duration::from_secs(5)).unwrap();
        let port = u.origin.port_u16().unwrap();
        for _ in 0..3 {
            assert_eq!(
                call(&u, &clients).await,
                format!("POST /v1/chat/completions HTTP/1.1|127.0.0.1:{port}")
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_read_to_its_end_returns_its_connection() {
        let (u, accepted) = upstream(false).await;
        let clients = Clients::new(Duration::from_secs(5)).unwrap();
        for _ in 0..2 {
            let resp = post(&u, &clients, "/stream").await.unwrap();
            let body = read_body(resp.into_body(), 1 << 20, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(
                body.starts_with(b"POST /v1/stream HTTP/1.1|") && body.ends_with(b"|end"),
                "{body:?}"
            );
            assert_eq!(u.pool.shard().len(), 1);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        let (u, accepted) = upstream(true).await;
        let clients = Clients::new(Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            assert!(call(&u, &clients).await.starts_with("POST /v1/chat/completions"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_dropped_before_its_end_does_not_return_its_connection() {
        let (u, accepted) = upstream(false).await;
        let clients = Clients::new(Duration::from_secs(5)).unwrap();
        let resp = post(&u, &clients, "/chat/completions").await.unwrap();
        assert!(u.pool.shard().is_empty());
        drop(resp);
        call(&u, &clients).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(
            u.pool.shard().len(),
            1,
            "the finished answer's connection is idle in the pool"
        );
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = config("gone", format!("http://127.0.0.1:{port}/v1"));
        let u = Upstream::from_config(&cfg).unwrap();
        let clients = Clients::new(Duration::from_secs(5)).unwrap();
        let e = post(&u, &clients, "/chat/completions").await.unwrap_err();
        assert!(matches!(e, UpstreamError::Connect(..)), "{e}");
    }

    #[test]
    fn base_urls_split_into_origin_host_and_path() {
        let (origin, host, path) = split_url("https://api.example.com/v1/").unwrap();
        assert_eq!(origin.to_string(), "https://api.example.com/");
        assert_eq!(host, "api.example.com");
        assert_eq!(path, "/v1");
        let (origin, host, path) = split_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(origin.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(path, "");
        for bad in [
            "ftp://h/v1",
            "/v1",
            "http://user:pw@h/v1",
            "http://h/v1?x=1",
            "not a url",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
