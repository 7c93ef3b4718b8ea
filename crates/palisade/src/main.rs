//! The `palisade` command line. This is the only crate that prints to stdout, knows about
//! terminals, or uses `anyhow`.

mod cli;
mod commands;
mod config;
mod units;

use std::process::ExitCode;

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

fn init_tracing(verbose: u8, json: bool, serving: bool) -> Option<tracing_appender::non_blocking::WorkerGuard> {
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
        // A server writes a line per request: through a background writer, so a request
        // never waits on stderr. Not lossy: when the writer falls behind, requests wait
        // rather than lose their access-log lines.
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(std::io::stderr());
        let builder = builder.with_writer(writer);
        if json {
            builder.json().init();
        } else {
            builder.init();
        }
        return Some(guard);
    }
    let builder = builder.with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
    None
}
