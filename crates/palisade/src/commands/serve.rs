//! `palisade serve`: the registry API.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use palisade_auth::JwtConfig;
use palisade_registry::server::Options;

use std::sync::Arc;

use palisade_auth::BoxFuture;
use palisade_registry::server::Registry;

use crate::cli::{OnlyArg, ServeArgs, ThreadingArg};
use crate::config::Config;
use crate::units::parse_size;
use crate::EXIT_CLEAN;
use palisade_gateway::server::Threading;

pub fn run(args: ServeArgs, config_path: Option<&Path>) -> Result<u8> {
    let (config, _) = Config::load(config_path)?;
    let home = args
        .home
        .or(config.serve.home)
        .unwrap_or_else(|| PathBuf::from(".palisade"));
    let listen = args
        .listen
        .or(config.serve.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let max_blob = args
        .max_blob_size
        .or(config.serve.max_blob_size)
        .unwrap_or_else(|| "64GiB".to_owned());
    let max_blob = parse_size(&max_blob)
        .map_err(anyhow::Error::msg)
        .context("--max-blob-size")?;
    let checkpoint_interval = args
        .checkpoint_interval
        .or(config.serve.checkpoint_interval)
        .unwrap_or(60);
    let mut policy_files = config.auth.policy_files;
    policy_files.extend(args.policies);
    let jwt = match args.jwt_issuer {
        Some(issuer) => {
            let mut c = JwtConfig::new(&issuer, args.jwt_audience.as_deref().unwrap_or_default());
            c.jwks_file = args.jwks_file;
            c.jwks_url = args.jwks_url;
            Some(c)
        }
        None => config.auth.jwt,
    };
    let bootstrap_token = match &args.bootstrap_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the bootstrap token file {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let options = Options {
        database_url: args.database_url.or(config.serve.database_url),
        max_blob,
        jwt,
        policy_files,
        bootstrap_token,
        blob_store: args.blob_store.or(config.serve.blob_store),
        blob_store_options: aws_options(),
        ..Options::default()
    };
    let mut gateway_config = config.gateway;
    if let Some(url) = args.redis_url {
        gateway_config.redis_url = Some(url);
    }
    gateway_config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert_file), Some(key_file)) => Some(palisade_gateway::server::TlsConfig {
            cert_file,
            key_file,
            client_ca_file: args.client_ca,
            require_client_cert: true,
        }),
        _ => config.serve.tls,
    };
    let acceptor = match &tls {
        Some(t) => Some(palisade_gateway::server::tls_acceptor(t).context("cannot set up TLS")?),
        None => None,
    };
    let server_options = palisade_gateway::server::ServerOptions {
        header_timeout: std::time::Duration::from_secs(config.serve.header_timeout_secs.unwrap_or(10).max(1)),
        max_header_bytes: config.serve.max_header_bytes.unwrap_or(32 << 10),
        max_connections: config.serve.max_connections.unwrap_or(10_000).max(1),
        ..Default::default()
    };
    let guard_config = config.guard;
    let only = args.only;
    let threading = match args.threading {
        Some(ThreadingArg::WorkStealing) => Threading::WorkStealing,
        Some(ThreadingArg::PerThread) => Threading::PerThread,
        None => config.serve.threading.unwrap_or_default(),
    };
    let workers = args.workers.or(config.serve.workers);
    if workers == Some(0) {
        anyhow::bail!("--workers must be at least 1");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    match (threading, workers) {
        (Threading::WorkStealing, Some(n)) => {
            rt.worker_threads(n);
        }
        (Threading::WorkStealing, None) => {}
        // The requests run on the per-thread loops; this runtime keeps the background
        // work (audit writer, checkpoints, deployment sync).
        (Threading::PerThread, _) => {
            rt.worker_threads(1);
        }
    }
    let serve_threads = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = rt.enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let accepts_jwt = options.jwt.is_some();
        let policy_files = options.policy_files.clone();
        let opened = palisade_registry::server::open(&home, options)
            .await
            .with_context(|| format!("cannot open {}", home.display()))?;
        if accepts_jwt {
            eprintln!("accepting OIDC/JWT bearer tokens as well as API keys");
        }
        if let Some(token) = &opened.first_admin_token {
            println!(
                "First start: created {} with an admin API key. It is shown once; store it now:",
                home.display()
            );
            println!("  PALISADE_TOKEN={token}");
        }
        let registry = opened.registry.clone();
        let gateway = if only == Some(OnlyArg::Registry) {
            None
        } else {
            Some(gateway(&registry, gateway_config, &policy_files, &guard_config).await?)
        };
        let listeners = match threading {
            Threading::WorkStealing => vec![tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?
                .into_std()?],
            Threading::PerThread => {
                let addrs = tokio::net::lookup_host(&listen)
                    .await
                    .with_context(|| format!("cannot resolve {listen}"))?;
                palisade_gateway::server::reuseport_listeners(addrs, serve_threads)
                    .with_context(|| format!("cannot listen on {listen}"))?
            }
        };
        let local_addr = listeners.first().context("no listener")?.local_addr()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let what = match only {
            Some(OnlyArg::Registry) => "registry",
            Some(OnlyArg::Gateway) => "gateway",
            None => "registry and gateway",
        };
        eprintln!(
            "palisade {what} listening on {scheme}://{} (state in {}, blobs in {})",
            local_addr,
            home.display(),
            registry.blobs.location()
        );
        if threading == Threading::PerThread {
            eprintln!(
                "  {} serve threads on SO_REUSEPORT listeners: any process of this user may also bind {local_addr} and take a share of its connections",
                listeners.len()
            );
        }
        let interval = std::time::Duration::from_secs(checkpoint_interval.max(1));
        let reg2 = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if let Err(e) = reg2.checkpoint().await {
                    tracing::error!("audit checkpoint failed: {e}");
                }
            }
        });
        let mut app = axum::Router::new();
        if only != Some(OnlyArg::Gateway) {
            app = app.merge(palisade_registry::server::router(registry.clone()));
        }
        if let Some(gw) = &gateway {
            app = app.merge(palisade_gateway::router(gw.clone()));
            if only == Some(OnlyArg::Gateway) {
                // With the registry, `/health` is its route; alone, the gateway answers it.
                app = app.route(
                    "/health",
                    axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
                );
            }
        }
        let gw_drain = gateway.clone();
        let stop = async move {
            shutdown().await;
            if let Some(g) = gw_drain {
                g.drain();
            }
        };
        let serve_threads = match threading {
            Threading::WorkStealing => {
                let mut listeners = listeners;
                let listener = tokio::net::TcpListener::from_std(listeners.remove(0))?;
                palisade_gateway::server::serve(listener, app, acceptor, server_options, stop)
                    .await
                    .map(|()| None)
            }
            Threading::PerThread => {
                palisade_gateway::server::serve_per_thread(listeners, app, acceptor, server_options, stop)
                    .await
                    .map(Some)
            }
        }
        .context("server error")?;
        // A final checkpoint so that everything up to shutdown is signed: first the
        // streams still relaying and the queued refusals. The per-thread runtimes still
        // run here, so connections their requests opened stay usable.
        if let Some(g) = &gateway {
            g.quiesce(std::time::Duration::from_secs(5)).await;
        }
        let checkpointed = registry.checkpoint().await.context("final audit checkpoint");
        if let Some(t) = serve_threads {
            if let Err(e) = t.finish().await {
                if let Err(c) = &checkpointed {
                    tracing::error!("{c:#}");
                }
                return Err(e).context("server error");
            }
        }
        checkpointed?;
        Ok(EXIT_CLEAN)
    })
}

/// The gateway over this process's registry: API keys and policies, ONNX models by
/// alias, and audit events into the registry's log.
async fn gateway(
    registry: &Arc<Registry>,
    config: palisade_gateway::config::GatewayConfig,
    policy_files: &[PathBuf],
    guard: &palisade_guard::GuardConfig,
) -> Result<Arc<palisade_gateway::Gateway>> {
    let policy = Arc::new(palisade_auth::Policy::load(policy_files)?);
    let gw = palisade_gateway::Gateway::new(
        config,
        palisade_gateway::Parts {
            authenticator: registry.auth.clone(),
            policy,
            source: Some(Arc::new(RegistrySource(registry.clone()))),
            audit: Arc::new(RegistryAudit(registry.clone())),
            guard: Some(guard.clone()),
        },
    )?;
    // With JSON logs, access-log lines skip tracing's formatter: the same shape, written
    // straight into the log buffer at a fraction of the cost per request.
    if let Some(w) = crate::logwriter::json_writer() {
        if tracing::enabled!(target: "palisade::access", tracing::Level::INFO) {
            gw.set_access_sink(Arc::new(move |line: &[u8]| w.write_line(line)));
        }
    }
    let weak = Arc::downgrade(&gw);
    registry
        .on_revoke(Box::new(move |id| {
            if let Some(g) = weak.upgrade() {
                g.auth.forget(id);
            }
        }))
        .await;
    gw.start().await;
    for d in gw.deployments.all() {
        let v = d.view();
        eprintln!(
            "  model {} ({}): {}",
            v.model,
            v.kind,
            v.backends
                .iter()
                .map(|b| format!(
                    "{}{}{}",
                    b.name,
                    b.version.map(|n| format!("@{n}")).unwrap_or_default(),
                    if b.ready { "" } else { " (not loaded)" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(gw)
}

/// ONNX models from this process's registry (decrypted and verified by it).
struct RegistrySource(Arc<Registry>);

impl palisade_gateway::source::ModelSource for RegistrySource {
    fn resolve<'a>(
        &'a self,
        model: &'a str,
        selector: &'a palisade_gateway::source::Selector,
    ) -> BoxFuture<'a, Result<palisade_gateway::source::SourceVersion, String>> {
        Box::pin(async move {
            let version = match selector {
                palisade_gateway::source::Selector::Alias(a) => {
                    self.0.meta.resolve_alias(model, a).await.map_err(|e| e.to_string())?
                }
                palisade_gateway::source::Selector::Version(v) => *v,
            };
            let v = self
                .0
                .meta
                .get_version(model, version)
                .await
                .map_err(|e| e.to_string())?;
            Ok(palisade_gateway::source::SourceVersion {
                version,
                digest: v.digest,
                files: v.files.into_iter().map(|f| (f.path, f.size)).collect(),
            })
        })
    }

    fn read<'a>(
        &'a self,
        model: &'a str,
        version: u64,
        path: &'a str,
        max: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move { self.0.read_file("palisade/gateway", model, version, path, max).await })
    }
}

/// Gateway audit events into the registry's Merkle log.
struct RegistryAudit(Arc<Registry>);

impl palisade_gateway::audit::AuditSink for RegistryAudit {
    fn append<'a>(&'a self, events: Vec<palisade_gateway::audit::AuditRecord>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0
                .record_events(
                    events
                        .into_iter()
                        .map(|e| (e.actor, e.action, e.target, e.outcome, e.detail))
                        .collect(),
                )
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// object_store's S3 options from the standard AWS environment variables
/// (`AWS_ACCESS_KEY_ID` → `aws_access_key_id`, `AWS_ENDPOINT_URL` → `aws_endpoint`, …).
fn aws_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| {
            let key = match k.as_str() {
                "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_S3" => "aws_endpoint".to_owned(),
                "AWS_DEFAULT_REGION" => "aws_region".to_owned(),
                _ => k.to_ascii_lowercase(),
            };
            (key, v)
        })
        .filter(|(k, _)| k.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok())
        .collect()
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("shutting down");
}

/// `palisade keys rotate`: a new key-encryption key; every blob's data key is re-wrapped
/// under it (blobs are not touched); the old key is kept in keys/retired/. Safe to re-run
/// after an interruption: keys already under the new key are skipped.
pub fn rotate(args: crate::cli::KeysRotateArgs) -> Result<u8> {
    use palisade_registry::crypto::{KeyProvider as _, LocalKeyFile};
    let keys = args.home.join("keys");
    let current_path = keys.join("kek");
    let next_path = keys.join("kek.next");
    if !current_path.exists() {
        anyhow::bail!(
            "{} has no key-encryption key; is it a palisade home?",
            args.home.display()
        );
    }
    let current = LocalKeyFile::open_or_create(&current_path)?;
    let next = LocalKeyFile::open_or_create(&next_path)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rewrapped = rt.block_on(async {
        let url = match &args.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", args.home.join("registry.db").display()),
        };
        let meta = palisade_registry::meta::MetaStore::connect(&url).await?;
        let store = palisade_registry::blobs::BlobStore::open(&args.home.join("store"), u64::MAX)?;
        let mut n = 0u64;
        for rec in meta.all_blobs().await? {
            if rec.key.kek_id == next.id() {
                continue;
            }
            let new = store.rewrap(&rec, &current, &next)?;
            meta.update_blob_key(&new).await?;
            n += 1;
        }
        anyhow::Ok(n)
    })?;
    let retired = keys.join("retired");
    std::fs::create_dir_all(&retired)?;
    let id = current.id().replace(':', "-");
    std::fs::rename(&current_path, retired.join(&id)).context("cannot retire the old key")?;
    std::fs::rename(&next_path, &current_path).context("cannot install the new key")?;
    println!(
        "rotated: {rewrapped} data keys re-wrapped from {} to {}; old key kept in {}",
        current.id(),
        next.id(),
        retired.join(id).display()
    );
    Ok(EXIT_CLEAN)
}
