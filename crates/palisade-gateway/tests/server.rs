//! The hardened HTTP server on a real loopback socket: TLS with client certificates
//! (mTLS, certificates made with rcgen), slow clients cut off at the header deadline,
//! oversized heads refused, and a clean drain at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use palisade_gateway::server::{serve, tls_acceptor, ServerOptions, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn app() -> Router {
    Router::new().route(
        "/who",
        get(|peer: axum::Extension<palisade_gateway::server::Peer>| async move {
            peer.cert_sha256.clone().unwrap_or_else(|| "anonymous".into())
        }),
    )
}

async fn start(
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ServerOptions,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        serve(listener, app(), tls, options, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, h)
}

/// One HTTP/1.1 exchange over any stream; the whole answer as text.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> String {
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET_WHO: &[u8] = b"GET /who HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client: Option<(String, String)>,
}

fn pki(with_client: bool) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "palisade test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client = with_client.then(|| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "svc-a");
        let cert = p.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    Pki {
        dir,
        ca_pem: ca.pem(),
        client,
    }
}

fn connector(p: &Pki, client_cert: bool) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(p.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match (&p.client, client_cert) {
        (Some((cert, key)), true) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        _ => b.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn tls_config(p: &Pki, client_ca: bool, require: bool) -> TlsConfig {
    TlsConfig {
        cert_file: p.dir.path().join("server.pem"),
        key_file: p.dir.path().join("server.key"),
        client_ca_file: client_ca.then(|| p.dir.path().join("ca.pem")),
        require_client_cert: require,
    }
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let p = pki(true);
    let acceptor = tls_acceptor(&tls_config(&p, true, true)).unwrap();
    let (addr, stop, handle) = start(Some(acceptor), ServerOptions::default()).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(&p, true).connect(name.clone(), tcp).await.unwrap();
    let answer = exchange(tls, GET_WHO).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The handler sees the client certificate's SHA-256.
    let body = answer.rsplit("\r\n\r\n").next().unwrap();
    assert_eq!(body.len(), 64, "{answer}");

    // No client certificate: the server refuses during or right after the handshake.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = match connector(&p, false).connect(name.clone(), tcp).await {
        Err(_) => true,
        Ok(tls) => !exchange(tls, GET_WHO).await.starts_with("HTTP/1.1 200"),
    };
    assert!(refused, "a client without a certificate was served");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(!exchange(tcp, GET_WHO).await.contains("HTTP/1.1 200"));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn optional_client_certificates_and_bad_tls_files() {
    let p = pki(true);
    let acceptor = tls_acceptor(&tls_config(&p, true, false)).unwrap();
    let (addr, stop, _h) = start(Some(acceptor), ServerOptions::default()).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(&p, false).connect(name, tcp).await.unwrap();
    let answer = exchange(tls, GET_WHO).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("anonymous"),
        "{answer}"
    );
    let _ = stop.send(());

    // Unreadable or mismatched files are clear errors at start.
    let mut missing = tls_config(&p, false, true);
    missing.key_file = p.dir.path().join("nope.key");
    assert!(tls_acceptor(&missing).err().unwrap().to_string().contains("nope.key"));
    let mut wrong = tls_config(&p, false, true);
    wrong.cert_file = p.dir.path().join("server.key");
    let e = tls_acceptor(&wrong).err().unwrap().to_string();
    assert!(e.contains("server.key"), "{e}");
    let other = pki(false);
    let mut mismatched = tls_config(&p, false, true);
    mismatched.key_file = other.dir.path().join("server.key");
    let e = tls_acceptor(&mismatched).err().unwrap().to_string();
    assert!(e.contains("do not fit"), "{e}");
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_oversized_heads_refused() {
    let options = ServerOptions {
        header_timeout: Duration::from_millis(300),
        max_header_bytes: 16 << 10,
        ..ServerOptions::default()
    };
    let (addr, stop, _h) = start(None, options).await;
    // A client that never finishes its headers.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /who HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    // A 40 KiB header.
    let s = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /who HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 << 10)
    );
    let answer = exchange(s, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A normal request still works.
    let s = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(s, GET_WHO).await.ends_with("anonymous"));
    let _ = stop.send(());
}

#[tokio::test]
async fn per_thread_serving_spreads_connections_over_its_listeners_and_drains() {
    use palisade_gateway::server::{reuseport_listeners, serve_per_thread, worker_index};
    let listeners = reuseport_listeners(["127.0.0.1:0".parse().unwrap()], 3).unwrap();
    let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    assert!(addrs.iter().all(|a| *a == addrs[0]), "all on one port: {addrs:?}");
    let addr = addrs[0];
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished2 = finished.clone();
    let app = Router::new()
        .route("/thread", get(|| async { format!("worker={}", worker_index()) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .route(
            "/later",
            get(move || {
                let finished = finished2.clone();
                async move {
                    // Work a request leaves behind on its thread, still running at shutdown.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(600)).await;
                        finished.store(true, std::sync::atomic::Ordering::SeqCst);
                    });
                    "started"
                }
            }),
        );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_per_thread(
        listeners,
        app,
        None,
        ServerOptions::default(),
        async {
            let _ = rx.await;
        },
    ));
    // Fresh connections land on all three listeners, and each request is answered by
    // the thread whose listener accepted it.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..90 {
        let s = TcpStream::connect(addr).await.unwrap();
        let text = exchange(s, b"GET /thread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let worker = text.rsplit("worker=").next().unwrap().trim().to_owned();
        seen.insert(worker);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["1", "2", "3"]);
    // A request in flight at shutdown still gets its answer.
    let slow = tokio::spawn(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        exchange(s, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await
    });
    let s = TcpStream::connect(addr).await.unwrap();
    let text = exchange(s, b"GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(text.ends_with("started"), "{text}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(()).unwrap();
    let text = slow.await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("done"), "{text}");
    let threads = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the threads stop serving after draining")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listeners are closed");
    // The threads' runtimes still run what requests left behind, until finished.
    let start = std::time::Instant::now();
    while !finished.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a task spawned by a request was cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), threads.finish())
        .await
        .expect("the threads end when finished")
        .unwrap();
}
