//! `palisade keygen | digest | sign | verify | verify-attestation`, and the attestation
//! written by `scan --attest`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use palisade_sign::cert::Cert;
use palisade_sign::model::{self, Difference, Signer, Trust, VerifyError, VerifyOptions};
use palisade_sign::{
    attestation, serialize, Bundle, Curve, HashAlgorithm, HashConfig, Manifest, Method, SigningKey, VerifyingKey,
};

use crate::cli::{
    CurveArg, DigestArgs, HashArg, HashArgs, KeygenArgs, SelectArgs, SignArgs, VerifyArgs, VerifyAttestationArgs,
};
use crate::units::parse_size;
use crate::{EXIT_CLEAN, EXIT_FINDINGS};

/// Largest key or certificate file read.
const MAX_PEM: u64 = 1 << 20;

fn read_small(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_PEM {
        bail!("{what} {} is larger than {MAX_PEM} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = String::from_utf8(read_small(path, "private key")?).context("private key is not PEM text")?;
    SigningKey::from_pem(&pem).with_context(|| format!("private key {}", path.display()))
}

pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let pem = String::from_utf8(read_small(path, "public key")?).context("public key is not PEM text")?;
    VerifyingKey::from_pem(&pem).with_context(|| format!("public key {}", path.display()))
}

fn load_certs(paths: &[PathBuf]) -> Result<Vec<Cert>> {
    let mut out = Vec::new();
    for p in paths {
        let pem = read_small(p, "certificate file")?;
        out.extend(
            Cert::from_pem_chain(&pem, &p.display().to_string())
                .with_context(|| format!("certificate file {}", p.display()))?,
        );
    }
    Ok(out)
}

pub fn read_bundle(path: &Path) -> Result<Bundle> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read signature {}", path.display()))?;
    if meta.len() > palisade_sign::bundle::MAX_BUNDLE_BYTES {
        bail!(
            "signature {} is larger than {} bytes",
            path.display(),
            palisade_sign::bundle::MAX_BUNDLE_BYTES
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read signature {}", path.display()))?;
    Bundle::from_json(&bytes).with_context(|| format!("signature {}", path.display()))
}

pub fn keygen(args: KeygenArgs) -> Result<u8> {
    let curve = match args.curve {
        CurveArg::P256 => Curve::P256,
        CurveArg::P384 => Curve::P384,
    };
    let key = SigningKey::generate(curve);
    let private = with_suffix(&args.output, "key");
    let public = with_suffix(&args.output, "pub");
    write_new(&private, key.to_pem()?.as_bytes(), 0o600, args.force)?;
    write_new(&public, key.verifying_key().to_pem()?.as_bytes(), 0o644, args.force)?;
    println!("private key: {} (keep it secret)", private.display());
    println!("public key:  {}", public.display());
    println!("key hint:    {}", key.verifying_key().hint()?);
    Ok(EXIT_CLEAN)
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_new(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(mode);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists; pass --force to overwrite it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Turns `--ignore-paths` into paths relative to the model root: paths that exist from the
/// working directory and lie inside the model are made relative to it; anything else is
/// taken as already relative to the model.
fn relative_ignores(model: &Path, paths: &[PathBuf]) -> Vec<String> {
    let root = std::fs::canonicalize(model).ok();
    paths
        .iter()
        .filter_map(|p| {
            if let (Some(root), Ok(abs)) = (&root, std::fs::canonicalize(p)) {
                if let Ok(rel) = abs.strip_prefix(root) {
                    return rel.to_str().map(str::to_owned);
                }
                if p.is_absolute() {
                    return None;
                }
            }
            if p.is_absolute() {
                return None;
            }
            p.to_str().map(str::to_owned)
        })
        .collect()
}

/// The signature file's path relative to the model root, when it lies inside the model.
fn inside_model(model: &Path, file: &Path) -> Option<String> {
    let root = std::fs::canonicalize(model).ok()?;
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(parent).ok()?;
    let abs = dir.join(file.file_name()?);
    abs.strip_prefix(&root).ok().and_then(|r| r.to_str()).map(str::to_owned)
}

fn hash_config(model: &Path, hash: &HashArgs, select: &SelectArgs) -> Result<HashConfig> {
    let method = match &hash.shard_size {
        Some(s) => {
            let size = parse_size(s).map_err(anyhow::Error::msg).context("--shard-size")?;
            if size == 0 {
                bail!("--shard-size must be positive");
            }
            Method::Shards { shard_size: size }
        }
        None => Method::Files,
    };
    Ok(HashConfig {
        method,
        hash: match hash.hash {
            HashArg::Sha256 => HashAlgorithm::Sha256,
            HashArg::Blake3 => HashAlgorithm::Blake3,
        },
        allow_symlinks: select.allow_symlinks,
        ignore_paths: relative_ignores(model, &select.ignore_paths),
        ignore_git_paths: !select.no_ignore_git_paths,
        threads: select.jobs.unwrap_or(0),
    })
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || total < (64 << 20) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("hashing {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Hashes a model with a progress bar.
pub fn hash_with_progress(model: &Path, cfg: &HashConfig, quiet: bool) -> Result<Manifest> {
    let total = serialize::planned_bytes(model, cfg).unwrap_or(0);
    let bar = progress(total, quiet);
    let manifest =
        serialize::hash_model(model, cfg, &|n| bar.inc(n)).with_context(|| format!("cannot hash {}", model.display()));
    bar.finish_and_clear();
    manifest
}

pub fn digest(args: DigestArgs) -> Result<u8> {
    let cfg = hash_config(&args.model, &args.hash, &args.select)?;
    let manifest = hash_with_progress(&args.model, &cfg, args.select.quiet)?;
    if args.json {
        let statement = model::statement(&manifest);
        println!("{}", serde_json::to_string_pretty(&statement)?);
    } else {
        println!("sha256:{}", manifest.root_digest_hex());
    }
    Ok(EXIT_CLEAN)
}

pub fn sign(args: SignArgs) -> Result<u8> {
    if args.sigstore {
        bail!(
            "keyless signing needs network access to Sigstore (an OIDC identity provider, Fulcio for the certificate, Rekor for the transparency log), which this machine does not have; sign with --key (and --certificate) instead, or sign keyless with `model_signing sign sigstore` where the network is available and verify here with `palisade verify --identity … --issuer … --trust-root …`"
        );
    }
    let Some(key_path) = &args.key else {
        bail!("--key is required")
    };
    let key = load_signing_key(key_path)?;
    let mut certificates = Vec::new();
    if let Some(cert) = &args.certificate {
        let mut paths = vec![cert.clone()];
        paths.extend(args.chain.iter().cloned());
        certificates = load_certs(&paths)?.into_iter().map(|c| c.der).collect();
    }
    let mut cfg = hash_config(&args.model, &args.hash, &args.select)?;
    if let Some(rel) = inside_model(&args.model, &args.output) {
        cfg.ignore_paths.push(rel);
    }
    let manifest = hash_with_progress(&args.model, &cfg, args.select.quiet)?;
    let bundle = model::sign_manifest(&manifest, &Signer { key, certificates })?;
    std::fs::write(&args.output, bundle.to_json())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "signed {} ({} resources, sha256:{}) -> {}",
        args.model.display(),
        manifest.resources.len(),
        manifest.root_digest_hex(),
        args.output.display()
    );
    Ok(EXIT_CLEAN)
}

pub fn verify(args: VerifyArgs) -> Result<u8> {
    let trust = if let Some(k) = &args.key {
        Trust::Key(load_verifying_key(k)?)
    } else if !args.chain.is_empty() {
        Trust::Certificates(load_certs(&args.chain)?)
    } else if let (Some(identity), Some(issuer)) = (&args.identity, &args.issuer) {
        {
            let mut trust = palisade_sign::trust::TrustMaterial::default();
            for p in &args.trust_root {
                trust
                    .add_file(&read_small(p, "trust root")?, &p.display().to_string())
                    .with_context(|| format!("trust root {}", p.display()))?;
            }
            for skipped in &trust.skipped {
                tracing::warn!("trust root: log key of an unsupported type ignored: {skipped}");
            }
            Trust::Keyless {
                trust,
                identity: identity.clone(),
                issuer: issuer.clone(),
            }
        }
    } else {
        bail!("say whom to trust: --key PUBLIC.pem, --chain CA.pem, or --identity/--issuer/--trust-root");
    };
    let bundle = read_bundle(&args.signature)?;
    let mut ignore_paths = relative_ignores(&args.model, &args.select.ignore_paths);
    if let Some(rel) = inside_model(&args.model, &args.signature) {
        ignore_paths.push(rel);
    }
    let opts = VerifyOptions {
        ignore_paths,
        ignore_git_paths: !args.select.no_ignore_git_paths,
        ignore_unsigned_files: args.ignore_unsigned_files,
        threads: args.select.jobs.unwrap_or(0),
    };
    let bar = progress(
        serialize::planned_bytes(&args.model, &HashConfig::default()).unwrap_or(0),
        args.select.quiet,
    );
    let result = model::verify_model(&args.model, &bundle, &trust, &opts, &|n| bar.inc(n));
    bar.finish_and_clear();
    match result {
        Ok(v) => {
            println!(
                "verified: {} ({} resources, sha256:{}) signed by {}",
                args.model.display(),
                v.manifest.resources.len(),
                v.manifest.root_digest_hex(),
                v.signer
            );
            Ok(EXIT_CLEAN)
        }
        Err(VerifyError::Hash(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot hash {}", args.model.display())))
        }
        Err(e) => {
            eprintln!("verification failed: {e}");
            if let VerifyError::Mismatch(d) = &e {
                if d.iter().all(|d| matches!(d, Difference::Added(_))) {
                    eprintln!("hint: the signed files are intact; only files that were not signed are present");
                }
            }
            Ok(EXIT_FINDINGS)
        }
    }
}

/// Reads an attestation: a Sigstore bundle, or a bare DSSE envelope.
fn read_attestation(path: &Path) -> Result<Bundle> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > palisade_sign::bundle::MAX_BUNDLE_BYTES {
        bail!("{} is too large to be an attestation", path.display());
    }
    if let Ok(env) = serde_json::from_slice::<palisade_core::attest::Envelope>(&bytes) {
        return Ok(Bundle::new(Default::default(), env));
    }
    Bundle::from_json(&bytes)
        .with_context(|| format!("{} is neither a Sigstore bundle nor a DSSE envelope", path.display()))
}

pub fn verify_attestation(args: VerifyAttestationArgs) -> Result<u8> {
    let key = load_verifying_key(&args.key)?;
    let bundle = read_attestation(&args.attestation)?;
    let digest = match (&args.model, &args.digest) {
        (Some(m), _) => Some(hash_with_progress(m, &HashConfig::default(), false)?.root_digest_hex()),
        (None, Some(d)) => Some(d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase()),
        (None, None) => None,
    };
    match attestation::verify(&bundle, &Trust::Key(key), &args.predicate_type, digest.as_deref()) {
        Ok((statement, signer)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&statement)?);
            } else {
                let subject = statement.subjects();
                println!(
                    "verified: {} about {subject}, signed by {signer}",
                    statement.predicate_type
                );
                if let Some(result) = statement.predicate.get("result").and_then(|r| r.as_str()) {
                    println!("result: {result}");
                }
                if digest.is_none() {
                    println!("note: the subject was not checked against a model (pass --model or --digest)");
                }
            }
            Ok(EXIT_CLEAN)
        }
        Err(e) => {
            eprintln!("verification failed: {e}");
            Ok(EXIT_FINDINGS)
        }
    }
}

/// Writes the signed scan attestation for `model`.
pub fn attest_scan(model: &Path, key_path: &Path, output: &Path, report: &palisade_core::ScanReport) -> Result<()> {
    let key = load_signing_key(key_path)?;
    let manifest = hash_with_progress(
        model,
        &HashConfig {
            allow_symlinks: true,
            ..Default::default()
        },
        true,
    )?;
    let highest = report.findings().map(|f| f.severity).max();
    let result = if highest.is_some() {
        "findings"
    } else if report.has_gaps() {
        "incomplete"
    } else {
        "clean"
    };
    let predicate = serde_json::json!({
        "scanner": {
            "name": "palisade",
            "version": env!("CARGO_PKG_VERSION"),
            "policyVersion": palisade_scan::POLICY_VERSION,
        },
        "scannedAt": palisade_core::time::rfc3339(palisade_core::time::now_secs()),
        "result": result,
        "highestSeverity": highest,
        "findingCounts": report.summary.findings,
        "report": report,
    });
    let bundle = attestation::attest(
        &manifest,
        attestation::SCAN_PREDICATE_TYPE,
        predicate,
        &Signer {
            key,
            certificates: Vec::new(),
        },
    )?;
    std::fs::write(output, bundle.to_json()).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "attestation: {} (subject sha256:{})",
        output.display(),
        manifest.root_digest_hex()
    );
    Ok(())
}
