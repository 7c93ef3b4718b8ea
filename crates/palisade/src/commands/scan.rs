//! `palisade scan`: collect paths, scan them in parallel, apply suppressions, render.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use globset::{Glob, GlobMatcher};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use palisade_core::render::{render_human, render_json, render_sarif};
use palisade_core::{FileReport, ScanReport, Severity};
use palisade_scan::{AllowPattern, Limits, Policy, ScanOptions};

use super::all_rules;
use crate::cli::{ColorChoice, Format, ScanArgs};
use crate::config::Config;
use crate::units::{parse_duration, parse_size};
use crate::{EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};

/// One thing to scan: a file on disk, or standard input spooled to a temporary file.
struct Target {
    path: PathBuf,
    display: String,
    size: u64,
}

/// A file that could not even be listed (walk error).
struct Unlisted {
    display: String,
    reason: String,
}

pub fn run(args: ScanArgs, config_path: Option<&Path>) -> Result<u8> {
    let started = Instant::now();
    let (config, _) = Config::load(config_path)?;
    let opts = options(&args, &config)?;
    let fail_on = args.fail_on.or(config.scan.fail_on).unwrap_or(Severity::Low);
    let jobs = args
        .jobs
        .or(config.scan.jobs)
        .filter(|j| *j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ignores = compile_ignores(&config)?;
    let baseline = match &args.baseline {
        Some(p) => load_baseline(p)?,
        None => HashSet::new(),
    };

    let mut stdin_spool = None;
    let mut targets = Vec::new();
    let mut unlisted = Vec::new();
    let mut escaping = Vec::new();
    for p in &args.paths {
        if p.as_os_str() == "-" {
            let spool = spool_stdin(opts.limits.max_file_size)?;
            let size = spool.as_file().metadata().map(|m| m.len()).unwrap_or(0);
            targets.push(Target {
                path: spool.path().to_path_buf(),
                display: "-".to_owned(),
                size,
            });
            stdin_spool = Some(spool);
        } else {
            collect(p, &mut targets, &mut unlisted, &mut escaping);
        }
    }

    let total_bytes: u64 = targets.iter().map(|t| t.size).sum();
    let progress = progress_bar(&args, targets.len(), total_bytes);
    let reports = scan_all(&targets, &opts, jobs, &progress);
    progress.finish_and_clear();
    drop(stdin_spool);

    let mut files: Vec<FileReport> = reports;
    files.extend(unlisted.into_iter().map(|u| FileReport::error(u.display, 0, u.reason)));
    files.extend(escaping.into_iter().map(|(link, target)| {
        let mut r = FileReport::new(link.clone(), 0);
        r.findings.push(
            palisade_core::Finding::new(
                &palisade_scan::rules::ARC003,
                palisade_core::Location::new(link),
                "symbolic link points outside the scanned directory; loaders that follow it read files that are not part of the model".to_owned(),
            )
            .with_evidence(target),
        );
        r
    }));
    let mut suppressed = 0u64;
    for f in &mut files {
        let before = f.findings.len();
        let path = f.path.clone();
        f.findings.retain(|finding| {
            !ignores.iter().any(|ig| ig.matches(&finding.code, &path)) && !baseline.contains(&finding.fingerprint())
        });
        suppressed += (before - f.findings.len()) as u64;
    }
    let report = ScanReport::new(
        env!("CARGO_PKG_VERSION"),
        files,
        suppressed,
        started.elapsed().as_millis() as u64,
    );

    let to_file = args.output.is_some();
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    match args.format {
        Format::Human => {
            let color = !to_file
                && match args.color {
                    ColorChoice::Always => true,
                    ColorChoice::Never => false,
                    ColorChoice::Auto => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                };
            render_human(&report, &mut out, color)?;
        }
        Format::Json => render_json(&report, &mut out)?,
        Format::Sarif => render_sarif(&report, &all_rules(), &mut out)?,
    }
    out.flush()?;
    if (args.format != Format::Human || to_file) && !args.quiet {
        eprintln!("{}", palisade_core::render::summary_line(&report));
    }

    if args.attest {
        let (Some(key), [model]) = (&args.key, args.paths.as_slice()) else {
            anyhow::bail!("--attest needs --key and exactly one model path (not standard input)");
        };
        if model.as_os_str() == "-" {
            anyhow::bail!("--attest needs a model path, not standard input");
        }
        super::sign::attest_scan(model, key, &args.attestation, &report)?;
    }

    let failing = report.findings().any(|f| f.severity >= fail_on);
    Ok(if failing {
        EXIT_FINDINGS
    } else if report.has_gaps() {
        EXIT_ERROR
    } else {
        EXIT_CLEAN
    })
}

fn options(args: &ScanArgs, config: &Config) -> Result<ScanOptions> {
    let mut limits = Limits::default();
    if let Some(s) = args.max_file_size.as_deref().or(config.scan.max_file_size.as_deref()) {
        limits.max_file_size = parse_size(s).map_err(anyhow::Error::msg).context("--max-file-size")?;
    }
    if let Some(s) = args.timeout.as_deref().or(config.scan.timeout.as_deref()) {
        limits.timeout = parse_duration(s).map_err(anyhow::Error::msg).context("--timeout")?;
    }
    let extra_allow = config
        .scan
        .allow
        .iter()
        .map(|a| AllowPattern::parse(a).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
        .context("scan.allow")?;
    Ok(ScanOptions {
        limits,
        policy: Policy { extra_allow },
    })
}

/// Fingerprints of the findings in an earlier JSON report.
fn load_baseline(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read baseline {}", path.display()))?;
    let report: ScanReport = serde_json::from_str(&text).with_context(|| {
        format!(
            "baseline {} is not a Palisade JSON report (palisade scan --format json)",
            path.display()
        )
    })?;
    if report.schema_version != palisade_core::report::JSON_SCHEMA_VERSION {
        anyhow::bail!(
            "baseline {} has schema version {}, this palisade reads {}",
            path.display(),
            report.schema_version,
            palisade_core::report::JSON_SCHEMA_VERSION
        );
    }
    Ok(report.findings().map(|f| f.fingerprint()).collect())
}

struct CompiledIgnore {
    code: String,
    glob: GlobMatcher,
}

impl CompiledIgnore {
    fn matches(&self, code: &str, path: &str) -> bool {
        code.starts_with(&self.code) && self.glob.is_match(path.strip_prefix("./").unwrap_or(path))
    }
}

fn compile_ignores(config: &Config) -> Result<Vec<CompiledIgnore>> {
    config
        .ignore
        .iter()
        .map(|ig| {
            let glob = Glob::new(&ig.path).with_context(|| format!("bad glob `{}` in [[ignore]]", ig.path))?;
            Ok(CompiledIgnore {
                code: ig.code.trim().to_ascii_uppercase(),
                glob: glob.compile_matcher(),
            })
        })
        .collect()
}

/// Expands a path argument: a file, or every file under a directory (symbolic links
/// inside directories are not followed and are listed as not scanned).
fn collect(path: &Path, targets: &mut Vec<Target>, unlisted: &mut Vec<Unlisted>, escaping: &mut Vec<(String, String)>) {
    let display = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            targets.push(Target {
                path: path.to_path_buf(),
                display,
                size: m.len(),
            });
            return;
        }
        Err(e) => {
            unlisted.push(Unlisted {
                display,
                reason: format!("cannot read: {e}"),
            });
            return;
        }
    }
    let root = path.canonicalize().ok();
    for entry in walkdir::WalkDir::new(path).follow_links(false).sort_by_file_name() {
        match entry {
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) if e.file_type().is_symlink() => {
                // Links that stay inside the scanned directory are scanned through (Hugging
                // Face caches link snapshots to blobs); links that leave it are findings;
                // links to directories are not walked (no loops).
                let link = e.path();
                let shown = link.display().to_string();
                match (link.canonicalize(), root.as_ref()) {
                    (Ok(real), Some(root)) if real.starts_with(root) && real.is_file() => {
                        let size = real.metadata().map(|m| m.len()).unwrap_or(0);
                        targets.push(Target {
                            path: real,
                            display: shown,
                            size,
                        });
                    }
                    (Ok(real), Some(root)) if !real.starts_with(root) => {
                        escaping.push((shown, real.display().to_string()));
                    }
                    (Ok(_), _) => {
                        tracing::warn!(path = %shown, "symbolic link to a directory is not followed");
                    }
                    (Err(err), _) => unlisted.push(Unlisted {
                        display: shown,
                        reason: format!("cannot follow symbolic link: {err}"),
                    }),
                }
            }
            Ok(e) => {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                targets.push(Target {
                    path: e.path().to_path_buf(),
                    display: e.path().display().to_string(),
                    size,
                });
            }
            Err(e) => {
                let display = e.path().map_or_else(|| display.clone(), |p| p.display().to_string());
                unlisted.push(Unlisted {
                    display,
                    reason: format!("cannot list: {e}"),
                });
            }
        }
    }
}

/// Standard input is copied to a private temporary file (bounded by the size limit) so
/// that containers can be read with random access.
fn spool_stdin(limit: u64) -> Result<tempfile::NamedTempFile> {
    let mut spool = tempfile::NamedTempFile::new().context("cannot create a temporary file for standard input")?;
    let copied =
        io::copy(&mut io::stdin().lock().take(limit + 1), spool.as_file_mut()).context("cannot read standard input")?;
    if copied > limit {
        anyhow::bail!("standard input is larger than the {limit} byte limit (--max-file-size)");
    }
    Ok(spool)
}

fn progress_bar(args: &ScanArgs, files: usize, bytes: u64) -> ProgressBar {
    let show = !args.quiet && io::stderr().is_terminal() && (files > 1 || bytes > 64 << 20);
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}")
    {
        pb.set_style(style);
    }
    pb
}

fn scan_all(targets: &[Target], opts: &ScanOptions, jobs: usize, progress: &ProgressBar) -> Vec<FileReport> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<FileReport>> = Mutex::new(Vec::with_capacity(targets.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs.min(targets.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = targets.get(i) else { break };
                progress.set_message(t.display.clone());
                let report = palisade_scan::scan_path(&t.path, &t.display, opts);
                tracing::debug!(path = %t.display, findings = report.findings.len(), "scanned");
                progress.inc(t.size);
                if let Ok(mut r) = results.lock() {
                    r.push(report);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
