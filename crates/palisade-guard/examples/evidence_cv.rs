//! Chooses the classifier's evidence floor n0 ([`palisade_guard::classifier::evidence_norm`])
//! by k-fold cross-validation on training files only.
//!
//! ```sh
//! cargo run --release -p palisade-guard --example evidence_cv -- \
//!     ../shared/datasets/prompt-injection/s-labs-train.jsonl \
//!     ../shared/datasets/prompt-injection/neuralchemy-train.jsonl \
//!     crates/palisade-guard/data/train-augment.jsonl
//! ```
//!
//! The files are concatenated in the order given (the order `palisade guard train`
//! uses); row `i` belongs to fold `i mod k`. Each fold's model is trained with the
//! default options on the other folds, and every n0 of the grid scores the held-out
//! fold (the floor applies at scoring time only, so one model per fold serves every
//! n0). For each file and n0 the tool prints the mean F1 over the folds ± its standard
//! error and the mean false-positive rate, then applies the one-standard-error rule to
//! the first `--judge` files (default 2, the public sets): the largest n0 whose mean F1
//! on each of them is within one standard error of that file's best.
//!
//! Options: `--folds K` (default 5), `--judge N`, `--grid 0,8,16,…`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a developer tool: failing loudly is fine

use palisade_guard::classifier::{train, TrainOptions};
use palisade_guard::eval::{read_jsonl, Metrics};

const GRID: &[u32] = &[0, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256];

fn main() {
    let mut files = Vec::new();
    let mut folds = 5usize;
    let mut judge = 2usize;
    let mut grid: Vec<u32> = GRID.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--folds" => folds = value().parse().expect("--folds K"),
            "--judge" => judge = value().parse().expect("--judge N"),
            "--grid" => grid = value().split(',').map(|x| x.parse().expect("--grid 0,8,…")).collect(),
            _ => files.push(a),
        }
    }
    assert!(
        !files.is_empty() && folds >= 2,
        "usage: evidence_cv TRAIN.jsonl… [--folds K] [--judge N] [--grid LIST]"
    );
    let judge = judge.min(files.len());
    let mut rows: Vec<(usize, String, bool)> = Vec::new();
    for (fi, path) in files.iter().enumerate() {
        let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rows.extend(
            read_jsonl(std::io::BufReader::new(f), path)
                .unwrap()
                .into_iter()
                .map(|e| (fi, e.text, e.label)),
        );
    }
    // metrics[n0 index][file][fold]
    let mut metrics = vec![vec![Vec::new(); files.len()]; grid.len()];
    for k in 0..folds {
        let train_set: Vec<(String, bool)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % folds != k)
            .map(|(_, (_, t, l))| (t.clone(), *l))
            .collect();
        let mut model = train(&train_set, &TrainOptions::default()).unwrap();
        for (gi, &n0) in grid.iter().enumerate() {
            model.evidence_features = n0;
            for (fi, per_file) in metrics[gi].iter_mut().enumerate() {
                per_file.push(Metrics::from_pairs(
                    rows.iter()
                        .enumerate()
                        .filter(|(i, (f, _, _))| i % folds == k && *f == fi)
                        .map(|(_, (_, t, l))| (model.score(t) >= model.threshold, *l)),
                ));
            }
        }
        eprintln!("fold {}/{folds} done", k + 1);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let se = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt() / (v.len() as f64).sqrt()
    };
    // (mean F1, SE, mean FPR) per n0 and file.
    let stats: Vec<Vec<(f64, f64, f64)>> = metrics
        .iter()
        .map(|per_file| {
            per_file
                .iter()
                .map(|folds| {
                    let f1: Vec<f64> = folds.iter().map(|m| m.f1).collect();
                    let fpr: Vec<f64> = folds.iter().map(|m| m.false_positive_rate).collect();
                    (mean(&f1), se(&f1), mean(&fpr))
                })
                .collect()
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
    println!("{folds}-fold cross-validation, classifier alone, threshold 0.5: mean F1 ± standard error (mean FPR)");
    print!("{:>5}", "n0");
    for n in &names {
        print!("  {n:>32}");
    }
    println!();
    for (gi, n0) in grid.iter().enumerate() {
        print!("{n0:>5}");
        for &(f1, e, fpr) in &stats[gi] {
            print!("  {:>32}", format!("{f1:.4} ± {e:.4} ({fpr:.4})"));
        }
        println!();
    }
    let mut chosen = grid[0];
    for (gi, &n0) in grid.iter().enumerate() {
        let ok = (0..judge).all(|fi| {
            let (best, best_se) =
                stats
                    .iter()
                    .map(|s| (s[fi].0, s[fi].1))
                    .fold((f64::MIN, 0.0), |a, b| if b.0 > a.0 { b } else { a });
            stats[gi][fi].0 >= best - best_se
        });
        if ok {
            chosen = chosen.max(n0);
        }
    }
    println!(
        "one-standard-error rule on {}: n0 = {chosen}",
        names[..judge].join(", ")
    );
}
