//! `palisade bom`: hash the model, scan each file, read what each file declares, and write
//! a CycloneDX 1.6 AI-BOM.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use palisade_scan::ScanOptions;
use palisade_sign::bom::{self, BomDataset, BomFile, BomInput};
use palisade_sign::{serialize, HashConfig};

use super::sign::hash_with_progress;
use crate::cli::BomArgs;
use crate::EXIT_CLEAN;

/// Symbolic links are hashed as their targets: Hugging Face cache snapshots are made of them.
fn config() -> HashConfig {
    HashConfig {
        allow_symlinks: true,
        ..Default::default()
    }
}

pub fn run(args: BomArgs) -> Result<u8> {
    let manifest = hash_with_progress(&args.model, &config(), false)?;
    let name = args.name.clone().unwrap_or_else(|| manifest.model_name.clone());
    let opts = ScanOptions::default();
    let mut files = Vec::new();
    let mut findings = Vec::new();
    for r in &manifest.resources {
        let (path, display) = if r.name == "." {
            (args.model.clone(), manifest.model_name.clone())
        } else {
            (args.model.join(&r.name), r.name.clone())
        };
        let report = palisade_scan::scan_path(&path, &display, &opts);
        let facts = report
            .formats
            .first()
            .and_then(|f| palisade_scan::describe::describe_path(&path, f));
        if !args.no_scan {
            findings.extend(report.findings.iter().cloned());
        }
        files.push(BomFile {
            path: display,
            formats: report.formats.clone(),
            facts,
        });
    }
    let mut datasets = Vec::new();
    for d in &args.dataset {
        let m = serialize::hash_model(d, &config(), &|_| {})
            .with_context(|| format!("cannot hash dataset {}", d.display()))?;
        datasets.push(BomDataset {
            name: m.model_name.clone(),
            manifest: m,
        });
    }
    let input = BomInput {
        name,
        version: args.model_version.clone(),
        manifest: &manifest,
        files,
        datasets,
        findings: (!args.no_scan).then_some(findings),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        timestamp: palisade_core::time::now_rfc3339(),
    };
    let doc = bom::build(&input);
    if args.attest {
        if let Some(key_path) = &args.key {
            let signer = palisade_sign::model::Signer {
                key: super::sign::load_signing_key(key_path)?,
                certificates: Vec::new(),
            };
            let bundle = palisade_sign::attestation::attest(
                &manifest,
                palisade_sign::attestation::BOM_PREDICATE_TYPE,
                doc.clone(),
                &signer,
            )?;
            std::fs::write(&args.attestation, bundle.to_json())
                .with_context(|| format!("cannot write {}", args.attestation.display()))?;
            eprintln!(
                "signed AI-BOM attestation for sha256:{} written to {}",
                manifest.root_digest_hex(),
                args.attestation.display()
            );
        }
    }
    let mut text = serde_json::to_vec_pretty(&doc)?;
    text.push(b'\n');
    match &args.output {
        Some(p) => write_file(p, &text)?,
        None => std::io::stdout().lock().write_all(&text)?,
    }
    Ok(EXIT_CLEAN)
}

fn write_file(p: &Path, text: &[u8]) -> Result<()> {
    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))
}
