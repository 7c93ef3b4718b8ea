//! `palisade serve`: the registry API.

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::units::parse_size;
use crate::EXIT_CLEAN;

pub fn run(args: ServeArgs) -> Result<u8> {
    let max_blob = parse_size(&args.max_blob_size)
        .map_err(anyhow::Error::msg)
        .context("--max-blob-size")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let opened = palisade_registry::server::open(&args.home, args.database_url.as_deref(), max_blob)
            .await
            .with_context(|| format!("cannot open {}", args.home.display()))?;
        if let Some(token) = &opened.first_admin_token {
            println!(
                "First start: created {} with an admin API key. It is shown once; store it now:",
                args.home.display()
            );
            println!("  PALISADE_TOKEN={token}");
        }
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "palisade registry listening on http://{} (state in {})",
            listener.local_addr()?,
            args.home.display()
        );
        let registry = opened.registry.clone();
        let interval = std::time::Duration::from_secs(args.checkpoint_interval.max(1));
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
