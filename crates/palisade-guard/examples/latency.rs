//! Per-prompt latency of `Guard::check_input` on fixed-size prompts, separating what a
//! prompt costs from what the machine's noise adds.
//!
//! ```sh
//! cargo run --release -p palisade-guard --example latency -- \
//!     ../shared/datasets/prompt-injection/s-labs-validation.jsonl \
//!     ../shared/datasets/prompt-injection/neuralchemy-validation.jsonl
//! ```
//!
//! Prompts are built as `palisade guard eval --latency-bytes` builds them (dataset texts
//! joined with spaces and cut at `--bytes`, default 1024). Every prompt is checked
//! `--passes` times (default 20), passes in alternating order. Printed: p50/p99 over
//! every timed check (what `guard eval` reports, one pass), and p50/p99 over prompts of
//! each prompt's median and minimum time (the cost of the prompt itself), then the
//! slowest prompts by median.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a developer tool: failing loudly is fine

use std::time::Instant;

use palisade_guard::eval::{read_jsonl, sized_prompts};
use palisade_guard::{Guard, GuardConfig};

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let mut files = Vec::new();
    let (mut bytes, mut passes, mut show) = (1024usize, 20usize, 5usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bytes" => bytes = args.next().unwrap().parse().unwrap(),
            "--passes" => passes = args.next().unwrap().parse().unwrap(),
            "--show" => show = args.next().unwrap().parse().unwrap(),
            _ => files.push(a),
        }
    }
    let mut texts = Vec::new();
    for f in &files {
        let r = std::io::BufReader::new(std::fs::File::open(f).unwrap());
        texts.extend(read_jsonl(r, f).unwrap().into_iter().map(|e| e.text));
    }
    let sized = sized_prompts(texts.iter().map(String::as_str), bytes, 2000);
    let guard = Guard::from_config(&GuardConfig::default()).unwrap();
    let mut times = vec![Vec::with_capacity(passes); sized.len()];
    for pass in 0..passes {
        let order: Box<dyn Iterator<Item = usize>> = if pass % 2 == 0 {
            Box::new(0..sized.len())
        } else {
            Box::new((0..sized.len()).rev())
        };
        for i in order {
            let t = Instant::now();
            let v = guard.check_input(&sized[i]);
            times[i].push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(v);
        }
    }
    let mut all: Vec<f64> = times.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let mut medians = Vec::new();
    let mut mins = Vec::new();
    for t in &mut times {
        t.sort_by(f64::total_cmp);
        medians.push(t[t.len() / 2]);
        mins.push(t[0]);
    }
    let mut by_median: Vec<usize> = (0..sized.len()).collect();
    by_median.sort_by(|&a, &b| medians[b].total_cmp(&medians[a]));
    medians.sort_by(f64::total_cmp);
    mins.sort_by(f64::total_cmp);
    println!("{} prompts of {bytes} bytes, {passes} passes", sized.len());
    println!(
        "every check:       p50 {:7.1} µs  p99 {:7.1} µs  max {:7.1} µs",
        pct(&all, 50.0),
        pct(&all, 99.0),
        all[all.len() - 1]
    );
    println!(
        "per-prompt median: p50 {:7.1} µs  p99 {:7.1} µs",
        pct(&medians, 50.0),
        pct(&medians, 99.0)
    );
    println!(
        "per-prompt min:    p50 {:7.1} µs  p99 {:7.1} µs",
        pct(&mins, 50.0),
        pct(&mins, 99.0)
    );
    for &i in by_median.iter().take(show) {
        let t = &times[i];
        let snippet: String = sized[i].chars().take(100).collect::<String>().replace('\n', " ");
        println!(
            "  #{i}: median {:.1} µs, min {:.1} µs: {snippet:?}",
            t[t.len() / 2],
            t[0]
        );
    }
}
