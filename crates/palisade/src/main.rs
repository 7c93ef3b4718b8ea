//! The `palisade` command line. This is the only crate that prints to stdout, knows about
//! terminals, or uses `anyhow`.

mod cli;
mod commands;
mod config;
mod logwriter;
mod units;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a server allocates per request, and glibc's
/// malloc and free took about an eighth of the gateway's CPU under load (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use cli::{Cli, Command};

/// Exit codes (as ripgrep and ruff): 0 clean, 1 findings at or above `--fail-on`,
/// 2 error or incomplete scan.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    config::set_explicit(cli.config.clone());
    // Held until exit: it flushes the server's log writer.
    let _log_guard = init_tracing(cli.verbose, cli.log_json, matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Scan(args) => commands::scan::run(args, cli.config.as_deref()),
        Command::Rule(args) => commands::rule::run(args),
        Command::Keygen(args) => commands::sign::keygen(args),
        Command::Digest(args) => commands::sign::digest(args),
        Command::Sign(args) => commands::sign::sign(args),
        Command::Verify(args) => commands::sign::verify(args),
        Command::VerifyAttestation(args) => commands::sign::verify_attestation(args),
        Command::Bom(args) => commands::bom::run(args),
        Command::Serve(args) => commands::serve::run(args, cli.config.as_deref()),
        Command::Push(args) => commands::client::push(args),
        Command::Pull(args) => commands::client::pull(args),
        Command::Versions(args) => commands::client::versions(args),
        Command::Promote(args) => commands::client::promote(args),
        Command::Alias(args) => commands::client::alias(args),
        Command::Tag(args) => commands::client::tag(args),
        Command::Audit(cli::AuditCommand::Verify(args)) => commands::client::audit_verify(args),
        Command::Keys(cli::KeysCommand::Create(args)) => commands::client::keys_create(args),
        Command::Keys(cli::KeysCommand::Rotate(args)) => commands::serve::rotate(args),
        Command::Deploy(cmd) => commands::client::deploy(cmd),
        Command::Guard(cmd) => commands::guard::run(cmd, cli.config.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_tracing(verbose: u8, json: bool, serving: bool) -> Option<logwriter::FlushGuard> {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // A server writes its access log (one line per request, `palisade::access`) at info
    // whatever the verbosity; `[gateway.access_log] enabled = false` turns it off.
    let default = if serving {
        format!("{level},palisade::access=info")
    } else {
        level.to_owned()
    };
    let filter = EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(serving);
    if serving {
        // A server writes a line per request: into a buffer that a background thread
        // writes out in batches, so a request never waits on stderr (logwriter.rs). Not
        // lossy: when the writer falls behind, requests wait rather than lose lines.
        match logwriter::spawn(std::io::stderr()) {
            Ok((writer, guard)) => {
                if json {
                    logwriter::set_json_writer(writer.clone());
                }
                let builder = builder.with_writer(writer);
                if json {
                    builder.json().init();
                } else {
                    builder.init();
                }
                return Some(guard);
            }
            Err(e) => eprintln!("warning: no background log writer ({e}); logging to stderr directly"),
        }
        let builder = builder.with_writer(std::io::stderr);
        if json {
            builder.json().init();
        } else {
            builder.init();
        }
        return None;
    }
    let builder = builder.with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
    None
}
