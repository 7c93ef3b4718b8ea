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
