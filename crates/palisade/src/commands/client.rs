//! Registry client commands: push, pull, versions, promote, keys create, audit verify.

use std::io::Write as _;
use std::path::{Component, Path};

use anyhow::{anyhow, bail, Context, Result};
use palisade_registry::audit::{self, Event, LogVerifier};
use palisade_sign::HashConfig;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::sign::hash_with_progress;
use crate::cli::{
    AliasArgs, AuditVerifyArgs, ClientArgs, KeysCreateArgs, PromoteArgs, PullArgs, PushArgs, TagArgs, VersionsArgs,
};
use crate::{EXIT_CLEAN, EXIT_FINDINGS};

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// Flags and environment first, then `[client]` in the config file, then defaults.
    fn new(c: &ClientArgs) -> Result<Self> {
        let (server, token) = match (&c.server, &c.token) {
            (Some(s), Some(t)) => (s.clone(), Some(t.clone())),
            _ => {
                let config = crate::config::load_global()?.client;
                let server = c
                    .server
                    .clone()
                    .or(config.server)
                    .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
                let token = match (&c.token, &config.token_file) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(f)) => Some(
                        std::fs::read_to_string(f)
                            .with_context(|| format!("cannot read client.token_file {}", f.display()))?
                            .trim()
                            .to_owned(),
                    ),
                    (None, None) => None,
                };
                (server, token)
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            // A registry that accepts a request and never answers must not hang the CLI;
            // bodies themselves may take as long as their size needs.
            .timeout_recv_response(Some(std::time::Duration::from_secs(300)))
            .build()
            .into();
        Ok(Client {
            base: server.trim_end_matches('/').to_owned(),
            token,
            agent,
        })
    }

    fn auth(&self) -> Result<String> {
        self.token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| anyhow!("no API key: set PALISADE_TOKEN or pass --token"))
    }

    /// Sends a request and returns status and body, or an error carrying the server's
    /// `{"error": …}` message.
    fn json(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = self.auth()?;
        let resp = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "DELETE" => self.agent.delete(&url).header("Authorization", &auth).call(),
            "PUT" => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(body.unwrap_or(Value::Null)),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body.unwrap_or(Value::Null)),
        }
        .with_context(|| format!("cannot reach the registry at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    fn expect(&self, method: &str, path: &str, body: Option<Value>, ok: &[u16]) -> Result<Value> {
        let (status, v) = self.json(method, path, body)?;
        if !ok.contains(&status) {
            let msg = v
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            bail!("{method} {path}: HTTP {status}: {msg}");
        }
        Ok(v)
    }
}

fn split_ref(r: &str) -> Result<(&str, &str)> {
    r.split_once('@')
        .ok_or_else(|| anyhow!("expected NAME@VERSION or NAME@ALIAS, got {r:?}"))
}

pub fn push(args: PushArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let manifest = hash_with_progress(&args.model, &HashConfig::default(), false)?;
    let (status, v) = c.json("POST", "/api/v1/models", Some(json!({ "name": args.name })))?;
    if status != 201 && status != 409 {
        bail!("cannot create model {}: HTTP {status}: {v}", args.name);
    }
    let mut files = Vec::new();
    for r in &manifest.resources {
        let (path, display) = if r.name == "." {
            (args.model.clone(), manifest.model_name.clone())
        } else {
            (args.model.join(&r.name), r.name.clone())
        };
        let digest = hex::encode(&r.digest);
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        let url = format!("{}/api/v1/blobs/{digest}", c.base);
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let resp = c
            .agent
            .put(&url)
            .header("Authorization", &c.auth()?)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string())
            .send(ureq::SendBody::from_reader(&mut reader))
            .with_context(|| format!("cannot upload {display}"))?;
        let status = resp.status().as_u16();
        if status != 200 && status != 201 {
            let text = resp.into_body().read_to_string().unwrap_or_default();
            bail!("upload of {display}: HTTP {status}: {text}");
        }
        files.push(json!({ "path": display, "digest": digest, "size": size }));
    }
    let lineage = json!({ "source_run": args.source_run, "code_commit": args.code_commit, "datasets": args.dataset });
    let v = c.expect(
        "POST",
        &format!("/api/v1/models/{}/versions", args.name),
        Some(json!({ "files": files, "lineage": lineage, "digest": manifest.root_digest_hex() })),
        &[201],
    )?;
    println!(
        "pushed {}@{} ({} files, sha256:{})",
        args.name,
        v["version"],
        files.len(),
        manifest.root_digest_hex()
    );
    Ok(EXIT_CLEAN)
}

fn safe_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

pub fn pull(args: PullArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let (name, version) = split_ref(&args.reference)?;
    let v = c.expect(
        "GET",
        &format!("/api/v1/models/{name}/versions/{version}"),
        None,
        &[200],
    )?;
    if args.output.exists()
        && std::fs::read_dir(&args.output)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not an empty directory", args.output.display());
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let files = v["files"].as_array().cloned().unwrap_or_default();
    for f in &files {
        let path = f["path"].as_str().unwrap_or_default();
        let digest = f["digest"].as_str().unwrap_or_default();
        if !safe_relative(path) {
            bail!("the registry sent an unsafe path {path:?}; refusing");
        }
        let dest = args.output.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let resp = c
            .agent
            .get(&format!("{}/api/v1/blobs/{digest}", c.base))
            .header("Authorization", &c.auth()?)
            .call()
            .with_context(|| format!("cannot download {path}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.into_body().read_to_string().unwrap_or_default();
            bail!("download of {path}: HTTP {status}: {text}");
        }
        let dir = dest.parent().unwrap_or(&args.output);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut body = resp.into_body();
        let mut reader = body.as_reader();
        // Hash on a second thread while this one downloads and writes.
        let (chunks, hashed) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let hasher = std::thread::spawn(move || {
            let mut sha = Sha256::new();
            for c in hashed {
                sha.update(&c);
            }
            hex::encode(sha.finalize())
        });
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let n = palisade_core::io::read_full(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            tmp.write_all(&buf)?;
            if chunks.send(buf).is_err() {
                bail!("{path}: the hashing thread stopped");
            }
        }
        drop(chunks);
        let got = hasher
            .join()
            .map_err(|_| anyhow!("{path}: the hashing thread failed"))?;
        if got != digest {
            bail!("{path}: downloaded content hashes to {got}, not {digest}; discarded");
        }
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    // The verified file digests together must be the version the registry named (the
    // OpenSSF root digest: SHA-256 over file digests in path-component order).
    let mut resources: Vec<palisade_sign::serialize::Resource> = files
        .iter()
        .map(|f| palisade_sign::serialize::Resource {
            name: f["path"].as_str().unwrap_or_default().to_owned(),
            algorithm: "sha256".to_owned(),
            digest: hex::decode(f["digest"].as_str().unwrap_or_default()).unwrap_or_default(),
        })
        .collect();
    resources.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    let root = hex::encode(palisade_sign::serialize::root_digest(&resources));
    if Some(root.as_str()) != v["digest"].as_str() {
        bail!(
            "the pulled files hash to sha256:{root}, not the version's {}",
            v["digest"]
        );
    }
    println!(
        "pulled {name}@{} ({} files, sha256:{root}) into {}",
        v["version"],
        files.len(),
        args.output.display()
    );
    Ok(EXIT_CLEAN)
}

pub fn versions(args: VersionsArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let v = c.expect("GET", &format!("/api/v1/models/{}/versions", args.name), None, &[200])?;
    for n in v["versions"].as_array().cloned().unwrap_or_default() {
        let d = c.expect(
            "GET",
            &format!("/api/v1/models/{}/versions/{n}", args.name),
            None,
            &[200],
        )?;
        println!(
            "{}@{}  sha256:{}  {} files  {} by {}",
            args.name,
            n,
            d["digest"].as_str().unwrap_or("?"),
            d["files"].as_array().map_or(0, Vec::len),
            d["created_at"].as_str().unwrap_or("?"),
            d["created_by"].as_str().unwrap_or("?")
        );
    }
    Ok(EXIT_CLEAN)
}

pub fn promote(args: PromoteArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let (name, version) = split_ref(&args.reference)?;
    let version: u64 = version
        .parse()
        .with_context(|| format!("{version:?} is not a version number"))?;
    c.expect(
        "PUT",
        &format!("/api/v1/models/{name}/aliases/{}", args.alias),
        Some(json!({ "version": version })),
        &[200],
    )?;
    println!("{name}@{} -> version {version}", args.alias);
    Ok(EXIT_CLEAN)
}

/// `palisade tag NAME[@VERSION] KEY=VALUE… [--delete KEY]…`
pub fn tag(args: TagArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let (name, version) = match args.reference.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (args.reference.as_str(), None),
    };
    let base = match version {
        Some(v) => format!("/api/v1/models/{name}/versions/{v}/tags"),
        None => format!("/api/v1/models/{name}/tags"),
    };
    if args.set.is_empty() && args.delete.is_empty() {
        let path = match version {
            Some(v) => format!("/api/v1/models/{name}/versions/{v}"),
            None => format!("/api/v1/models/{name}"),
        };
        let v = c.expect("GET", &path, None, &[200])?;
        for (k, val) in v["tags"].as_object().cloned().unwrap_or_default() {
            println!("{k}={}", val.as_str().unwrap_or_default());
        }
        return Ok(EXIT_CLEAN);
    }
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {kv:?}"))?;
        c.expect("PUT", &format!("{base}/{k}"), Some(json!({ "value": v })), &[204])?;
        println!("{}: {k}={v}", args.reference);
    }
    for k in &args.delete {
        c.expect("DELETE", &format!("{base}/{k}"), None, &[204])?;
        println!("{}: {k} removed", args.reference);
    }
    Ok(EXIT_CLEAN)
}

/// `palisade alias NAME [ALIAS] [--delete]`: list a model's aliases, show one with its
/// history, or remove it (`promote` sets them).
pub fn alias(args: AliasArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let name = &args.name;
    match &args.alias {
        None => {
            let v = c.expect("GET", &format!("/api/v1/models/{name}"), None, &[200])?;
            for (alias, version) in v["aliases"].as_object().cloned().unwrap_or_default() {
                println!("{name}@{alias} -> version {version}");
            }
        }
        Some(alias) if args.delete => {
            c.expect(
                "DELETE",
                &format!("/api/v1/models/{name}/aliases/{alias}"),
                None,
                &[200, 204],
            )?;
            println!("{name}@{alias} removed");
        }
        Some(alias) => {
            let v = c.expect("GET", &format!("/api/v1/models/{name}/aliases/{alias}"), None, &[200])?;
            println!("{name}@{alias} -> version {}", v["version"]);
            for h in v["history"].as_array().cloned().unwrap_or_default() {
                let to = match h["version"].as_u64() {
                    Some(n) => format!("version {n}"),
                    None => "removed".to_owned(),
                };
                println!(
                    "  {}  {to}  by {}",
                    h["changed_at"].as_str().unwrap_or("?"),
                    h["changed_by"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(EXIT_CLEAN)
}

pub fn keys_create(args: KeysCreateArgs) -> Result<u8> {
    let c = Client::new(&args.client)?;
    let v = c.expect(
        "POST",
        "/api/v1/keys",
        Some(json!({ "subject": args.subject, "roles": args.roles })),
        &[201],
    )?;
    println!("id:    {}", v["id"].as_str().unwrap_or("?"));
    println!("token: {} (shown once)", v["token"].as_str().unwrap_or("?"));
    Ok(EXIT_CLEAN)
}

/// `audit verify --event E --proof P --checkpoint C` (inclusion) or `--old-checkpoint O
/// --proof P --checkpoint C` (consistency), offline.
fn verify_proof(args: &AuditVerifyArgs, verifier: &LogVerifier) -> Result<u8> {
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let (Some(proof_path), Some(cp_path)) = (&args.proof, &args.checkpoint) else {
        bail!("--proof and --checkpoint are needed");
    };
    let proof: Value =
        serde_json::from_str(&read(proof_path)?).with_context(|| format!("{} is not a proof", proof_path.display()))?;
    let hashes = proof["hashes"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no `hashes` array", proof_path.display()))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| anyhow!("{}: a hash is not 32 bytes of hex", proof_path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let outcome = (|| -> Result<String, audit::AuditError> {
        let cp = verifier.verify(&read(cp_path).map_err(|e| audit::AuditError::Checkpoint(e.to_string()))?)?;
        if let Some(e) = &args.event {
            let text = read(e).map_err(|e| audit::AuditError::Checkpoint(e.to_string()))?;
            let event: Event = serde_json::from_str(&text).map_err(|e| audit::AuditError::Event {
                index: 0,
                reason: e.to_string(),
            })?;
            audit::verify_included(&event, &cp, &hashes)?;
            Ok(format!(
                "event {} is in the log of {} events signed by {}",
                event.seq, cp.size, cp.origin
            ))
        } else if let Some(o) = &args.old_checkpoint {
            let old = verifier.verify(&read(o).map_err(|e| audit::AuditError::Checkpoint(e.to_string()))?)?;
            audit::verify_extends(&old, &cp, &hashes)?;
            Ok(format!(
                "the log of {} events extends the log of {} events",
                cp.size, old.size
            ))
        } else {
            Err(audit::AuditError::Checkpoint("nothing to verify".into()))
        }
    })();
    match outcome {
        Ok(msg) => {
            println!("verified: {msg}");
            Ok(EXIT_CLEAN)
        }
        Err(e) => {
            eprintln!("audit proof verification failed: {e}");
            Ok(EXIT_FINDINGS)
        }
    }
}

pub fn audit_verify(args: AuditVerifyArgs) -> Result<u8> {
    let key_text = if Path::new(&args.key).is_file() {
        std::fs::read_to_string(&args.key)?
    } else {
        args.key.clone()
    };
    let verifier = LogVerifier::parse(&key_text)?;
    if args.event.is_some() || args.old_checkpoint.is_some() {
        return verify_proof(&args, &verifier);
    }
    if args.events.is_some() != args.checkpoint.is_some() {
        bail!("--events and --checkpoint go together (or give neither to fetch from --server)");
    }
    let (events, note): (Vec<Event>, String) = match (&args.events, &args.checkpoint) {
        (Some(e), Some(cp)) => (
            serde_json::from_slice(&std::fs::read(e).with_context(|| format!("cannot read {}", e.display()))?)
                .with_context(|| format!("{} is not an exported event list", e.display()))?,
            std::fs::read_to_string(cp).with_context(|| format!("cannot read {}", cp.display()))?,
        ),
        _ => {
            let c = Client::new(&args.client)?;
            let note = match c.json("GET", "/api/v1/audit/checkpoint", None)? {
                (200, Value::String(s)) => s,
                (status, v) => bail!("checkpoint: HTTP {status}: {v}"),
            };
            let events = c.expect("GET", "/api/v1/audit/events", None, &[200])?;
            (serde_json::from_value(events)?, note)
        }
    };
    match audit::verify_log(&events, &note, &verifier) {
        Ok(cp) => {
            println!(
                "verified: {} events up to the checkpoint of size {} signed by {}",
                events.len(),
                cp.size,
                cp.origin
            );
            Ok(EXIT_CLEAN)
        }
        Err(e) => {
            eprintln!("audit log verification failed: {e}");
            Ok(EXIT_FINDINGS)
        }
    }
}

/// `palisade deploy …`: the gateway's deployment API.
pub fn deploy(cmd: crate::cli::DeployCommand) -> Result<u8> {
    use crate::cli::DeployCommand as D;
    let base = "/gateway/v1/deployments";
    let (client, method, path, body) = match cmd {
        D::Status { model, client } => {
            let path = model.map_or_else(|| base.to_owned(), |m| format!("{base}/{}", seg(&m)));
            (client, "GET", path, None)
        }
        D::Switch { model, backend, client } => (
            client,
            "POST",
            format!("{base}/{}/switch", seg(&model)),
            Some(json!({ "backend": backend })),
        ),
        D::Canary {
            model,
            backend,
            steps,
            interval,
            max_error_rate,
            max_p99_ms,
            min_requests,
            client,
        } => (
            client,
            "POST",
            format!("{base}/{}/canary", seg(&model)),
            Some(json!({ "backend": backend, "steps": steps, "interval_secs": interval,
                         "max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms,
                         "min_requests": min_requests })),
        ),
        D::Rollback { model, client } => (client, "POST", format!("{base}/{}/rollback", seg(&model)), None),
        D::Shadow {
            model,
            backend,
            off,
            client,
        } => {
            let b = if off { Value::Null } else { json!(backend) };
            (
                client,
                "PUT",
                format!("{base}/{}/shadow", seg(&model)),
                Some(json!({ "backend": b })),
            )
        }
    };
    let v = Client::new(&client)?.expect(method, &path, body, &[200])?;
    let list = match v.get("deployments").and_then(Value::as_array) {
        Some(all) => all.clone(),
        None => vec![v],
    };
    for d in &list {
        print_deployment(d);
    }
    Ok(EXIT_CLEAN)
}

fn print_deployment(d: &Value) {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    println!("{} ({}): {}", s("model"), s("kind"), s("status"));
    if let Some(backends) = d.get("backends").and_then(Value::as_array) {
        for b in backends {
            let name = b.get("name").and_then(Value::as_str).unwrap_or("?");
            let weight = b.get("weight").and_then(Value::as_u64).unwrap_or(0);
            let version = b
                .get("version")
                .and_then(Value::as_u64)
                .map(|v| format!(" v{v}"))
                .unwrap_or_default();
            let ready = if b.get("ready").and_then(Value::as_bool) == Some(false) {
                " (not loaded)"
            } else {
                ""
            };
            let shadow = if d.get("shadow").and_then(Value::as_str) == Some(name) {
                " [shadow]"
            } else {
                ""
            };
            println!("  {name:<16} {weight:>3}%{version}{ready}{shadow}");
        }
    }
    let generation = d.get("generation").and_then(Value::as_u64).unwrap_or(0);
    println!("  last change: {} (generation {generation})", s("last_change"));
}

/// One URL path segment, percent-encoded.
fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
