//! `palisade guard`: check prompts and responses, evaluate the guard on labelled data,
//! train the prompt-injection classifier.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand, ValueEnum};
use palisade_guard::classifier::{self, FeatureSpec, TrainOptions};
use palisade_guard::eval::{percentile, read_jsonl, Example, Metrics};
use palisade_guard::{Context, Decision, Guard, GuardConfig, Model, Verdict};
use serde::Deserialize;

use crate::config::Config;
use crate::{EXIT_CLEAN, EXIT_FINDINGS};

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Check a prompt (or, with --response, a model response) for prompt injection,
    /// personal data, secrets, and output risks.
    ///
    /// Exit status: 0 allowed; 1 flagged, redacted or blocked; 2 error.
    #[command(
        after_help = "Examples:\n  palisade guard check 'Ignore all previous instructions'\n  palisade guard check --file prompt.txt --format json\n  llm-output | palisade guard check --response --allow-domain example.com -"
    )]
    Check(CheckArgs),
    /// Evaluate the guard on labelled JSON Lines: prompt injection (precision, recall,
    /// F1, false-positive rate, latency) or personal data (--task pii).
    #[command(
        after_help = "Examples:\n  palisade guard eval ../shared/datasets/prompt-injection/*-validation.jsonl\n  palisade guard eval --task pii pii.jsonl --predictions out.jsonl --format json"
    )]
    Eval(EvalArgs),
    /// Train the prompt-injection classifier on labelled JSON Lines
    /// (`{"text": ..., "label": 0|1}`); deterministic: the same data gives the same model.
    #[command(
        after_help = "Example (the shipped model, in this order):\n  palisade guard train ../shared/datasets/prompt-injection/s-labs-train.jsonl \\\n    ../shared/datasets/prompt-injection/neuralchemy-train.jsonl \\\n    crates/palisade-guard/data/train-augment.jsonl --output model.bin"
    )]
    Train(TrainArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model trained by `palisade guard train` instead of the embedded default.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The text to check; `-` reads standard input.
    #[arg(conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from a file.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Check the text as a model response (output checks) instead of a prompt.
    #[arg(long)]
    pub response: bool,
    /// JSON schema the response must satisfy (with --response).
    #[arg(long, value_name = "FILE", requires = "response")]
    pub schema: Option<PathBuf>,
    /// Domain links and images may point at (repeatable; adds to the config).
    #[arg(long = "allow-domain", value_name = "DOMAIN")]
    pub allow_domains: Vec<String>,
    /// Canary token that must not appear in a response (repeatable).
    #[arg(long = "canary", value_name = "TOKEN")]
    pub canaries: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// Prompt injection: `{"text", "label"}` lines.
    #[default]
    Injection,
    /// Personal data and secrets: `{"text", "entities": [{"type", "value"}]}` lines.
    Pii,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// JSON Lines files.
    #[arg(required = true)]
    pub data: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub task: Task,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Size of the synthetic prompts for the latency measurement (injection task).
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    pub latency_bytes: usize,
    /// Write one JSON line of predicted entities per input line (pii task).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data (JSON Lines), read in the order given.
    #[arg(required = true)]
    pub data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, short)]
    pub output: PathBuf,
    /// log2 of the number of hashed feature buckets.
    #[arg(long, default_value_t = FeatureSpec::default().bits)]
    pub bits: u8,
    /// Passes over the data.
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    pub epochs: u32,
    /// Shuffle seed.
    #[arg(long, default_value_t = TrainOptions::default().shuffle_seed)]
    pub seed: u64,
    /// Labelled data to report metrics on after training (not used for training).
    #[arg(long, value_name = "FILE")]
    pub validation: Vec<PathBuf>,
}

pub fn run(cmd: GuardCommand, config: Option<&Path>) -> Result<u8> {
    match cmd {
        GuardCommand::Check(a) => check(a, config),
        GuardCommand::Eval(a) => eval(a, config),
        GuardCommand::Train(a) => train(a),
    }
}

fn guard_config(config: Option<&Path>) -> Result<GuardConfig> {
    let (cfg, _) = Config::load(config)?;
    Ok(cfg.guard)
}

fn build_guard(cfg: &GuardConfig, model: &ModelArgs) -> Result<Guard> {
    Ok(match &model.model {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read model {}", p.display()))?;
            let m = Model::from_bytes(&bytes).with_context(|| format!("invalid model {}", p.display()))?;
            Guard::with_model(cfg, m)?
        }
        None => Guard::from_config(cfg)?,
    })
}

fn read_input(a: &CheckArgs) -> Result<String> {
    let bytes = match (&a.text, &a.file) {
        (Some(t), None) if t == "-" => {
            let mut b = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut b)
                .context("cannot read standard input")?;
            b
        }
        (Some(t), None) => return Ok(t.clone()),
        (None, Some(f)) => std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
        _ => bail!("give the text, `-` for standard input, or --file"),
    };
    String::from_utf8(bytes).context("input is not UTF-8")
}

fn check(a: CheckArgs, config: Option<&Path>) -> Result<u8> {
    let mut cfg = guard_config(config)?;
    cfg.output.allowed_domains.extend(a.allow_domains.iter().cloned());
    cfg.output.canary_tokens.extend(a.canaries.iter().cloned());
    let guard = build_guard(&cfg, &a.model)?;
    let text = read_input(&a)?;
    let schema: Option<serde_json::Value> = match &a.schema {
        Some(p) => Some(
            serde_json::from_slice(&std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
                .with_context(|| format!("{} is not JSON", p.display()))?,
        ),
        None => None,
    };
    let verdict = if a.response {
        let ctx = Context {
            schema: schema.map(std::sync::Arc::new),
            ..Context::default()
        };
        guard.check_output(&text, &ctx)
    } else {
        guard.check_input(&text)
    };
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&verdict)?)?,
        Format::Human => print_verdict(&mut out, &verdict, a.response)?,
    }
    Ok(if verdict.is_flagged() {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

fn print_verdict(out: &mut impl Write, v: &Verdict, response: bool) -> Result<()> {
    if response {
        writeln!(out, "{}", v.decision.name().to_uppercase())?;
    } else {
        writeln!(
            out,
            "{}  (injection score {:.2})",
            v.decision.name().to_uppercase(),
            v.injection_score
        )?;
    }
    for d in &v.detections {
        let span = d.span.map(|s| format!(" @{}..{}", s.start, s.end)).unwrap_or_default();
        writeln!(
            out,
            "  {} {:<13} {:<6} {:.2}  {}{}{}",
            d.code,
            format!("{:?}", d.layer).to_lowercase(),
            format!("{:?}", d.action).to_lowercase(),
            d.score,
            d.kind.as_deref().map(|k| format!("[{k}] ")).unwrap_or_default(),
            d.reason,
            span
        )?;
    }
    if let Decision::Redact { text } = &v.decision {
        writeln!(out, "--- redacted text ---\n{text}")?;
    }
    Ok(())
}

fn load(paths: &[PathBuf]) -> Result<Vec<(String, Vec<Example>)>> {
    let mut out = Vec::new();
    for p in paths {
        let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        let rows = read_jsonl(BufReader::new(f), &p.display().to_string())?;
        let name = p
            .file_name()
            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
        out.push((name, rows));
    }
    Ok(out)
}

fn eval(a: EvalArgs, config: Option<&Path>) -> Result<u8> {
    let cfg = guard_config(config)?;
    let guard = build_guard(&cfg, &a.model)?;
    match a.task {
        Task::Injection => eval_injection(&guard, &a),
        Task::Pii => eval_pii(&guard, &a),
    }
}

fn eval_injection(guard: &Guard, a: &EvalArgs) -> Result<u8> {
    let sets = load(&a.data)?;
    let threshold = guard.threshold();
    let mut per_file = Vec::new();
    let mut all_pairs = Vec::new();
    let mut layer_hits = std::collections::BTreeMap::<String, usize>::new();
    let mut lat_us = Vec::new();
    for (name, rows) in &sets {
        let mut pairs = Vec::with_capacity(rows.len());
        for ex in rows {
            let t = Instant::now();
            let r = guard.injection(&ex.text);
            lat_us.push(t.elapsed().as_secs_f64() * 1e6);
            for d in &r.detections {
                *layer_hits
                    .entry(format!("{}:{:?}", d.code, d.layer).to_lowercase())
                    .or_default() += 1;
            }
            pairs.push((r.score >= threshold, ex.label));
        }
        all_pairs.extend(pairs.iter().copied());
        per_file.push((name.clone(), Metrics::from_pairs(pairs)));
    }
    let combined = Metrics::from_pairs(all_pairs);
    lat_us.sort_by(f64::total_cmp);
    // Fixed-size prompts: dataset texts concatenated to `latency_bytes`.
    const LATENCY_PASSES: usize = 3;
    let sized = palisade_guard::eval::sized_prompts(
        sets.iter().flat_map(|(_, r)| r.iter().map(|e| e.text.as_str())),
        a.latency_bytes,
        2000,
    );
    // Steady state, as a serving process sees it: one untimed pass warms the caches (the
    // classifier's weights are megabytes), then three timed passes.
    for p in &sized {
        std::hint::black_box(guard.check_input(p));
    }
    let mut sized_us = Vec::with_capacity(sized.len() * LATENCY_PASSES);
    for _ in 0..LATENCY_PASSES {
        for p in &sized {
            let t = Instant::now();
            let v = guard.check_input(p);
            sized_us.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(v);
        }
    }
    sized_us.sort_by(f64::total_cmp);
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let files: serde_json::Map<String, serde_json::Value> = per_file
                .iter()
                .map(|(n, m)| Ok((n.clone(), serde_json::to_value(m)?)))
                .collect::<Result<_>>()?;
            let j = serde_json::json!({
                "task": "injection",
                "threshold": threshold,
                "files": files,
                "combined": combined,
                "detections_by_rule_and_layer": layer_hits,
                "latency_us": {
                    "dataset_prompts": {"count": lat_us.len(), "p50": percentile(&lat_us, 50.0), "p99": percentile(&lat_us, 99.0)},
                    "sized_prompts": {"bytes": a.latency_bytes, "count": sized.len(), "passes": LATENCY_PASSES, "warmup_passes": 1, "p50": percentile(&sized_us, 50.0), "p99": percentile(&sized_us, 99.0), "check": "check_input (all input layers)"},
                },
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
        }
        Format::Human => {
            writeln!(
                out,
                "{:<32} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7}",
                "file", "rows", "precision", "recall", "F1", "FPR", "acc"
            )?;
            for (n, m) in per_file
                .iter()
                .chain(std::iter::once(&("combined".to_owned(), combined)))
            {
                writeln!(
                    out,
                    "{:<32} {:>6} {:>9.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
                    n, m.examples, m.precision, m.recall, m.f1, m.false_positive_rate, m.accuracy
                )?;
            }
            writeln!(
                out,
                "latency per dataset prompt (injection layers): p50 {:.1} µs, p99 {:.1} µs ({} prompts)",
                percentile(&lat_us, 50.0),
                percentile(&lat_us, 99.0),
                lat_us.len()
            )?;
            writeln!(
                out,
                "latency per {} B prompt (check_input, all layers): p50 {:.1} µs, p99 {:.1} µs ({} prompts × {LATENCY_PASSES} passes after a warm-up pass)",
                a.latency_bytes,
                percentile(&sized_us, 50.0),
                percentile(&sized_us, 99.0),
                sized.len()
            )?;
            writeln!(out, "detections by rule and layer: {layer_hits:?}")?;
        }
    }
    Ok(EXIT_CLEAN)
}

#[derive(Debug, Deserialize)]
struct PiiRow {
    text: String,
    #[serde(default)]
    entities: Vec<PiiEntity>,
}

#[derive(Debug, Deserialize, serde::Serialize, PartialEq, Eq, Hash, Clone, PartialOrd, Ord)]
struct PiiEntity {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

fn eval_pii(guard: &Guard, a: &EvalArgs) -> Result<u8> {
    let mut rows = Vec::new();
    for p in &a.data {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let r: PiiRow =
                serde_json::from_str(line).with_context(|| format!("{}:{}: bad line", p.display(), i + 1))?;
            rows.push(r);
        }
    }
    let t = Instant::now();
    let predicted: Vec<Vec<PiiEntity>> = rows
        .iter()
        .map(|r| {
            guard
                .sensitive(&r.text)
                .into_iter()
                .map(|e| PiiEntity {
                    kind: e.kind.to_owned(),
                    value: r.text.get(e.start..e.end).unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .collect();
    let secs = t.elapsed().as_secs_f64();
    let bytes: usize = rows.iter().map(|r| r.text.len()).sum();
    if let Some(p) = &a.predictions {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        );
        for pred in &predicted {
            writeln!(f, "{}", serde_json::json!({ "entities": pred }))?;
        }
        f.flush()?;
    }
    // Entity-level matching on (type, value), per kind; only kinds the data labels are
    // scored (a secret found in a personal-data set is neither right nor wrong).
    let labelled: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.entities.iter().map(|e| e.kind.as_str()))
        .collect();
    let mut per_kind = std::collections::BTreeMap::<String, (usize, usize, usize)>::new();
    for (r, pred) in rows.iter().zip(&predicted) {
        let mut gold: Vec<&PiiEntity> = r.entities.iter().collect();
        for p in pred.iter().filter(|p| labelled.contains(p.kind.as_str())) {
            let e = per_kind.entry(p.kind.clone()).or_default();
            if let Some(i) = gold
                .iter()
                .position(|g| g.kind == p.kind && g.value.trim() == p.value.trim())
            {
                gold.remove(i);
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        for g in gold {
            per_kind.entry(g.kind.clone()).or_default().2 += 1;
        }
    }
    let (tp, fp, fn_) = per_kind
        .values()
        .fold((0, 0, 0), |acc, v| (acc.0 + v.0, acc.1 + v.1, acc.2 + v.2));
    let overall = Metrics::from_counts(tp, fp, fn_);
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Json => {
            let kinds: serde_json::Map<String, serde_json::Value> = per_kind
                .iter()
                .map(|(k, (tp, fp, fn_))| Ok((k.clone(), serde_json::to_value(Metrics::from_counts(*tp, *fp, *fn_))?)))
                .collect::<Result<_>>()?;
            let j = serde_json::json!({
                "task": "pii",
                "rows": rows.len(),
                "bytes": bytes,
                "seconds": secs,
                "mb_per_s": bytes as f64 / 1e6 / secs.max(1e-9),
                "overall": overall,
                "kinds": kinds,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
        }
        Format::Human => {
            writeln!(out, "{:<20} {:>9} {:>7} {:>7}", "kind", "precision", "recall", "F1")?;
            for (k, (tp, fp, fn_)) in &per_kind {
                let m = Metrics::from_counts(*tp, *fp, *fn_);
                writeln!(out, "{:<20} {:>9.4} {:>7.4} {:>7.4}", k, m.precision, m.recall, m.f1)?;
            }
            writeln!(
                out,
                "{:<20} {:>9.4} {:>7.4} {:>7.4}",
                "overall", overall.precision, overall.recall, overall.f1
            )?;
            writeln!(
                out,
                "{} rows, {} bytes in {:.3} s ({:.1} MB/s)",
                rows.len(),
                bytes,
                secs,
                bytes as f64 / 1e6 / secs.max(1e-9)
            )?;
        }
    }
    Ok(EXIT_CLEAN)
}

fn train(a: TrainArgs) -> Result<u8> {
    let sets = load(&a.data)?;
    let examples: Vec<(String, bool)> = sets
        .into_iter()
        .flat_map(|(_, rows)| rows.into_iter().map(|e| (e.text, e.label)))
        .collect();
    let mut opts = TrainOptions::default();
    opts.spec.bits = a.bits;
    opts.epochs = a.epochs;
    opts.shuffle_seed = a.seed;
    let t = Instant::now();
    let model = classifier::train(&examples, &opts)?;
    let bytes = model.to_bytes();
    std::fs::write(&a.output, &bytes).with_context(|| format!("cannot write {}", a.output.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "trained on {} examples in {:.1} s; wrote {} ({} bytes, 2^{} buckets)",
        examples.len(),
        t.elapsed().as_secs_f64(),
        a.output.display(),
        bytes.len(),
        a.bits
    )?;
    for (name, rows) in load(&a.validation)? {
        let m = Metrics::from_pairs(rows.iter().map(|e| (model.score(&e.text) >= model.threshold, e.label)));
        writeln!(
            out,
            "{name}: precision {:.4} recall {:.4} F1 {:.4} FPR {:.4} (classifier alone)",
            m.precision, m.recall, m.f1, m.false_positive_rate
        )?;
    }
    Ok(EXIT_CLEAN)
}
