//! `palisade serve`: the registry API.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use palisade_auth::JwtConfig;
use palisade_registry::server::Options;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::units::parse_size;
use crate::EXIT_CLEAN;

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let accepts_jwt = options.jwt.is_some();
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
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "palisade registry listening on http://{} (state in {}, blobs in {})",
            listener.local_addr()?,
            home.display(),
            opened.registry.blobs.location()
        );
        let registry = opened.registry.clone();
        let interval = std::time::Duration::from_secs(checkpoint_interval.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if let Err(e) = registry.checkpoint().await {
                    tracing::error!("audit checkpoint failed: {e}");
                }
            }
        });
        let app = palisade_registry::server::router(opened.registry.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .context("server error")?;
        // A final checkpoint so that everything up to shutdown is signed.
        opened.registry.checkpoint().await.context("final audit checkpoint")?;
        Ok(EXIT_CLEAN)
    })
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
