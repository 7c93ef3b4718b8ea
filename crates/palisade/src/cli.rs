use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use palisade_core::Severity;

/// Palisade secures the life of a machine-learning model: it scans model artifacts for
/// code that runs when they are loaded, and reports findings against MITRE ATLAS and
/// OWASP.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (default: ./palisade.toml when it exists).
    #[arg(long, global = true, env = "PALISADE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug, -vvv trace). PALISADE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write logs as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan model files, directories or archives for unsafe content.
    ///
    /// Formats are recognised by content, never by file name: pickle (protocols 0-5),
    /// PyTorch zip and legacy checkpoints, TorchScript, joblib, NumPy .npy/.npz, and zip,
    /// tar, gzip and zlib containers of them.
    ///
    /// Exit status: 0 no finding at or above --fail-on; 1 findings at or above --fail-on;
    /// 2 an error or an incomplete scan (and no such findings).
    #[command(
        after_help = "Examples:\n  palisade scan model.pt\n  palisade scan ./models --format sarif --output palisade.sarif\n  cat model.pkl | palisade scan -"
    )]
    Scan(ScanArgs),
    /// Print the documentation of a rule, or list all rules.
    Rule(RuleArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human, env = "PALISADE_FORMAT")]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with status 1 when a finding is at or above this severity
    /// [default: low, or `scan.fail_on` in the config].
    #[arg(long, value_name = "SEVERITY", env = "PALISADE_FAIL_ON")]
    pub fail_on: Option<Severity>,
    /// Do not read files larger than this (e.g. 512MiB, 64GiB) [default: 64GiB].
    #[arg(long, value_name = "SIZE", env = "PALISADE_MAX_FILE_SIZE")]
    pub max_file_size: Option<String>,
    /// Time budget per file (e.g. 30s, 5m); a file that exceeds it is reported
    /// incomplete [default: 300s].
    #[arg(long, value_name = "DURATION", env = "PALISADE_TIMEOUT")]
    pub timeout: Option<String>,
    /// Files scanned in parallel [default: number of CPUs].
    #[arg(short, long, value_name = "N", env = "PALISADE_JOBS")]
    pub jobs: Option<usize>,
    /// Accept the findings recorded in FILE (a JSON report from an earlier
    /// `palisade scan --format json`): they are suppressed and counted, new ones are
    /// reported. Findings match by rule, path, member chain and evidence.
    #[arg(long, value_name = "FILE", env = "PALISADE_BASELINE")]
    pub baseline: Option<PathBuf>,
    /// Colour in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// No progress bar and no summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// A rule code such as PKL001; without it, all rules are listed.
    pub code: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print every rule's documentation as one Markdown document (docs/rules.md).
    #[arg(long)]
    pub markdown: bool,
}
