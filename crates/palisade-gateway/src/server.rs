//! The HTTP server under the registry and the gateway: HTTP/1.1 on hyper with limits a
//! plain `axum::serve` does not set — a deadline for request headers (slow-loris
//! clients), a cap on header size and count, a cap on open connections — and TLS from
//! PEM files with optional client certificates (mTLS), through rustls.
//!
//! Two ways to run it ([`Threading`]): one work-stealing runtime whose threads share every
//! connection ([`serve`]), or one single-threaded runtime per thread, each accepting on its
//! own `SO_REUSEPORT` listener ([`serve_per_thread`]). In the second, a request and the
//! upstream call it makes stay on one thread — no cross-thread wake-ups on the hot path —
//! which raises proxy throughput; the price is that a thread busy with one request delays
//! the other connections the kernel gave it, even while another core is idle.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

/// The connection a request came on: the client's address and, with mTLS, the SHA-256 of
/// its certificate.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub cert_sha256: Option<String>,
}

/// `[serve.tls]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to: turns on mTLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With a client CA: refuse connections without a valid client certificate (default),
    /// or accept them and rely on bearer credentials alone.
    #[serde(default = "yes")]
    pub require_client_cert: bool,
}

fn yes() -> bool {
    true
}

/// How the server spreads its work over threads (`serve.threading`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Threading {
    /// One runtime whose worker threads share every connection and steal each other's
    /// work: the best spread of uneven load.
    #[default]
    WorkStealing,
    /// One single-threaded runtime per worker, each with its own listener on the same
    /// address (`SO_REUSEPORT`): the kernel spreads connections, and each request stays
    /// on its thread. More proxy throughput; no work stealing.
    PerThread,
}

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The number (1, 2, …) of the per-thread server loop on this thread; 0 on any other
/// thread. Lets per-thread state (the upstream connection pools) be picked without a
/// lock.
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// Where work that outlives a request runs: the runtime current when the owner was
/// built (the main one), not the per-thread loop the request happened to arrive on, so
/// that it is neither tied to one serve thread's load nor cut off when that thread ends.
#[derive(Clone, Debug)]
pub(crate) struct Background(Option<tokio::runtime::Handle>);

impl Background {
    /// The current runtime, if there is one.
    pub(crate) fn capture() -> Background {
        Background(tokio::runtime::Handle::try_current().ok())
    }

    pub(crate) fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.0 {
            Some(h) => drop(h.spawn(f)),
            None => drop(tokio::spawn(f)),
        }
    }

    /// Runs `f` to its end on the background runtime and gives back its output.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        match &self.0 {
            Some(h) => h.spawn(f).await.map_err(|e| e.to_string()),
            None => Ok(f.await),
        }
    }
}

/// `n` listeners on one address with `SO_REUSEPORT` (non-blocking, for
/// [`serve_per_thread`]): like a plain bind, the first of `addrs` that can be listened on.
/// With port 0 the first listener picks the port and the rest join it.
pub fn reuseport_listeners(
    addrs: impl IntoIterator<Item = SocketAddr>,
    n: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut last = None;
    for addr in addrs {
        match reuseport_on(addr, n) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")))
}

fn reuseport_on(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        if out.is_empty() {
            addr = listener.local_addr()?;
        }
        out.push(listener);
    }
    Ok(out)
}

/// Serves `app` on every listener, each from its own thread with a single-threaded
/// runtime, until `shutdown` resolves; then every thread drains as [`serve`] does.
///
/// The threads outlive their listeners: they keep running their runtimes (and so the
/// tasks and connections their requests started) until [`ServeThreads::finish`], which
/// the caller calls once its own last work — a final audit checkpoint — is done. If a
/// thread cannot start, fails or panics, the others are stopped and finished and the
/// first error is returned.
pub async fn serve_per_thread(
    listeners: Vec<std::net::TcpListener>,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<ServeThreads> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<std::io::Result<()>>(listeners.len().max(1));
    let per_thread = ServerOptions {
        max_connections: options.max_connections.div_ceil(listeners.len().max(1)),
        ..options
    };
    let mut threads = ServeThreads {
        release: release_tx,
        handles: Vec::with_capacity(listeners.len()),
    };
    let mut first_error = None;
    for (i, listener) in listeners.into_iter().enumerate() {
        let (app, tls, options) = (app.clone(), tls.clone(), per_thread.clone());
        let report = Report {
            done: Some(done_tx.clone()),
            thread: i + 1,
        };
        let (mut stop, mut release) = (stop_rx.clone(), release_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("palisade-serve-{}", i + 1))
            .spawn(move || {
                // 1-based: 0 stays with every other thread (background tasks).
                WORKER.with(|w| w.set(i + 1));
                let mut report = report;
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return report.send(Err(e)),
                };
                let result = rt.block_on(async {
                    let listener = TcpListener::from_std(listener)?;
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    serve(listener, app, tls, options, stopped).await
                });
                report.send(result);
                // Keep driving what the requests left behind until released.
                rt.block_on(async {
                    let _ = release.wait_for(|r| *r).await;
                });
                rt.shutdown_timeout(Duration::from_secs(5));
            });
        match spawned {
            Ok(handle) => threads.handles.push(handle),
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    drop(done_tx);
    if first_error.is_none() {
        tokio::pin!(shutdown);
        // A thread that ends early (its listener failed, it panicked) stops the others.
        tokio::select! {
            () = &mut shutdown => {}
            r = done_rx.recv() => first_error = r.and_then(Result::err),
        }
    }
    let _ = stop_tx.send(true);
    // Every thread reports once (its `Report` sees to that, even when it panics).
    while let Some(r) = done_rx.recv().await {
        if let (None, Err(e)) = (&first_error, r) {
            first_error = Some(e);
        }
    }
    match first_error {
        None => Ok(threads),
        Some(e) => {
            if let Err(other) = threads.finish().await {
                tracing::error!(error = %other, "while stopping the other serve threads");
            }
            Err(e)
        }
    }
}

/// The threads of [`serve_per_thread`] after their listeners closed.
#[must_use = "the serve threads run until finished"]
pub struct ServeThreads {
    release: tokio::sync::watch::Sender<bool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl ServeThreads {
    /// Ends the threads' runtimes (tasks still running on them are cancelled) and waits
    /// for the threads; an error names a thread that panicked.
    pub async fn finish(self) -> std::io::Result<()> {
        let _ = self.release.send(true);
        let handles = self.handles;
        tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            for (i, h) in handles.into_iter().enumerate() {
                if h.join().is_err() && result.is_ok() {
                    result = Err(std::io::Error::other(format!("serve thread {} panicked", i + 1)));
                }
            }
            result
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// A serve thread's outcome, sent once: by [`Report::send`], or when the thread unwinds
/// before that, as a panic.
struct Report {
    done: Option<tokio::sync::mpsc::Sender<std::io::Result<()>>>,
    thread: usize,
}

impl Report {
    fn send(&mut self, result: std::io::Result<()>) {
        if let Some(done) = self.done.take() {
            let _ = done.try_send(result);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let thread = self.thread;
        self.send(Err(std::io::Error::other(format!("serve thread {thread} panicked"))));
    }
}

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Request headers must arrive within this time.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most headers in a request.
    pub max_headers: usize,
    /// Most open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// A TLS handshake must finish within this time.
    pub handshake_timeout: Duration,
    /// How long open connections may finish their requests at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 32 << 10,
            max_headers: 100,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn pem_file(path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// A rustls server configuration from PEM files.
pub fn tls_acceptor(c: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |path: &PathBuf, message: String| TlsError::File {
        path: path.clone(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem_file(&c.cert_file)?)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&c.cert_file, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(&c.cert_file, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem_file(&c.key_file)?)
        .map_err(|e| file_err(&c.key_file, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &c.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem_file(ca)?) {
                let cert = cert.map_err(|e| file_err(ca, format!("not a PEM certificate: {e}")))?;
                roots.add(cert).map_err(|e| file_err(ca, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_err(ca, "no CA certificate in the file".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if c.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Config(e.to_string()))?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` until `shutdown` resolves, then lets open requests finish (bounded by
/// `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let options = options.clone();
        let mut stop = stop_rx.clone();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        cert_sha256: None,
                    };
                    connection(TokioIo::new(stream), app, peer, &options, &mut stop).await;
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(options.handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let cert_sha256 = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| hex::encode(Sha256::digest(c.as_ref())));
                    let peer = Peer { addr, cert_sha256 };
                    connection(TokioIo::new(tls), app, peer, &options, &mut stop).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(options.drain_timeout, drain).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

async fn connection<I>(
    io: I,
    app: Router,
    peer: Peer,
    options: &ServerOptions,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = tower::ServiceExt::map_request(app, move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let svc = TowerToHyperService::new(svc);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .max_headers(options.max_headers);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let wake = SelfWake::new();
    tokio::select! {
        r = wake.repoll(conn.as_mut()) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = wake.repoll(conn.as_mut()).await;
        }
    }
}

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// Turns a wake-up a future gives itself while it is being polled into an immediate
/// second poll. hyper's connection dispatcher and the handler it runs share one task, so
/// reading a request body wakes that same task; the runtime treats such a wake-up as a
/// yield, re-queues the task and wakes an idle worker thread to look for work — a
/// context switch per request for nothing. Wake-ups from anywhere else, or after the
/// poll, reach the task's own waker as usual.
struct SelfWake {
    state: std::sync::atomic::AtomicU8,
    task: parking_lot::Mutex<Option<std::task::Waker>>,
}

/// Polls again at once at most this often in one poll; a future that keeps waking
/// itself (a yield to stay fair, an exhausted budget) is then left to the runtime.
const MAX_REPOLLS: usize = 4;

impl SelfWake {
    fn new() -> Arc<SelfWake> {
        Arc::new(SelfWake {
            state: std::sync::atomic::AtomicU8::new(IDLE),
            task: parking_lot::Mutex::new(None),
        })
    }

    fn repoll<F: std::future::Future + Unpin>(self: &Arc<Self>, fut: F) -> Repoll<F> {
        Repoll {
            fut,
            waker: std::task::Waker::from(self.clone()),
            shared: self.clone(),
        }
    }
}

impl std::task::Wake for SelfWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        match self.state.compare_exchange(POLLING, WOKEN, AcqRel, Acquire) {
            // Being polled: the poll loop sees WOKEN and polls again.
            Ok(_) | Err(WOKEN) => {}
            Err(_) => {
                if let Some(w) = self.task.lock().as_ref() {
                    w.wake_by_ref();
                }
            }
        }
    }
}

struct Repoll<F> {
    fut: F,
    waker: std::task::Waker,
    shared: Arc<SelfWake>,
}

impl<F: std::future::Future + Unpin> std::future::Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
        let this = self.get_mut();
        {
            let mut task = this.shared.task.lock();
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner = std::task::Context::from_waker(&this.waker);
        for _ in 0..MAX_REPOLLS {
            this.shared.state.store(POLLING, Release);
            let r = std::pin::Pin::new(&mut this.fut).poll(&mut inner);
            let woken = this
                .shared
                .state
                .compare_exchange(POLLING, IDLE, AcqRel, Acquire)
                .is_err();
            if !woken || r.is_ready() {
                this.shared.state.store(IDLE, Release);
                return r;
            }
        }
        this.shared.state.store(IDLE, Release);
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::Future as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    /// A task waker that counts its wake-ups.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself during its first `selfish` polls, then is ready; counts its polls.
    struct Selfish {
        selfish: usize,
        polls: usize,
        saved: Option<Waker>,
    }
    impl std::future::Future for Selfish {
        type Output = usize;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            self.saved = Some(cx.waker().clone());
            if self.polls > self.selfish {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// A task waker and the count of its wake-ups.
    fn counted_task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn selfish(n: usize) -> Selfish {
        Selfish {
            selfish: n,
            polls: 0,
            saved: None,
        }
    }

    #[test]
    fn a_wake_up_during_the_poll_is_a_second_poll_not_a_reschedule() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let wake = SelfWake::new();
        let mut f = wake.repoll(selfish(2));
        assert_eq!(std::pin::Pin::new(&mut f).poll(&mut cx), Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task was never woken");
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_left_to_the_runtime() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let wake = SelfWake::new();
        let mut f = wake.repoll(selfish(100));
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(f.fut.polls, MAX_REPOLLS);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "yielded once, through the task's waker"
        );
    }

    #[test]
    fn wake_ups_after_the_poll_reach_the_task_from_any_thread() {
        let (count, task) = counted_task();
        let mut cx = Context::from_waker(&task);
        let wake = SelfWake::new();
        // Pending without waking itself: keeps the waker it was given.
        let mut f = wake.repoll(std::future::poll_fn(|cx: &mut Context<'_>| {
            let _ = cx.waker().clone();
            Poll::<()>::Pending
        }));
        assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
        let inner = f.waker.clone();
        std::thread::spawn(move || inner.wake()).join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Woken during a poll, a wake-up never goes missing: either a second poll or
        // the task's waker.
        let mut s = wake.repoll(selfish(1));
        assert_eq!(std::pin::Pin::new(&mut s).poll(&mut cx), Poll::Ready(2));
        let saved = s.fut.saved.take().unwrap();
        saved.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
