//! The registry from the command line against a real `palisade serve` process: keys,
//! push, versions, promote, pull (verified), audit verify online and offline, key rotation,
//! and a server killed with SIGKILL in the middle of a push.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use common::{start, stop};

fn cli(args: &[&str], server: &str, token: &str, cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env("PALISADE_SERVER", server)
        .env("PALISADE_TOKEN", token)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn token_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    out.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn model_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../palisade-sign/tests/interop/model")
}

fn get(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent.get(url).call().unwrap().into_body().read_to_string().unwrap()
}

#[test]
fn push_promote_pull_audit_and_rotate() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let home = d.join("home");
    let (mut server, addr, admin) = start(&home, true);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    let vkey = get(&format!("{addr}/api/v1/audit/key"));

    let o = cli(
        &["keys", "create", "--subject", "ci", "--role", "publisher"],
        &addr,
        &admin,
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let publisher = token_of(&o);
    let approver = token_of(&cli(
        &["keys", "create", "--subject", "rm", "--role", "approver"],
        &addr,
        &admin,
        d,
    ));
    let reader = token_of(&cli(
        &["keys", "create", "--subject", "svc", "--role", "reader"],
        &addr,
        &admin,
        d,
    ));

    let model = model_dir();
    let o = cli(
        &[
            "push",
            model.to_str().unwrap(),
            "--name",
            "tiny",
            "--source-run",
            "run-1",
        ],
        &addr,
        &publisher,
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("pushed tiny@1"), "{}", text(&o));
    let o = cli(&["push", model.to_str().unwrap(), "--name", "tiny"], &addr, &reader, d);
    assert_eq!(o.status.code(), Some(2), "a reader cannot push: {}", text(&o));

    let o = cli(&["versions", "tiny"], &addr, &reader, d);
    assert!(text(&o).contains("tiny@1"), "{}", text(&o));
    // The same from `[client]` in the config file (server, and the token in a file).
    let cfg_dir = d.join("cfg");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(cfg_dir.join("reader.token"), format!("{reader}\n")).unwrap();
    std::fs::write(
        cfg_dir.join("palisade.toml"),
        format!("[client]\nserver = \"{addr}\"\ntoken_file = \"reader.token\"\n"),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["versions", "tiny"])
        .env_remove("PALISADE_SERVER")
        .env_remove("PALISADE_TOKEN")
        .current_dir(&cfg_dir)
        .output()
        .unwrap();
    assert!(text(&o).contains("tiny@1"), "config-file client: {}", text(&o));

    let o = cli(&["promote", "tiny@1", "--alias", "production"], &addr, &publisher, d);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("403"), "{}", text(&o));
    let o = cli(&["promote", "tiny@1", "--alias", "production"], &addr, &approver, d);
    assert!(o.status.success(), "{}", text(&o));
    let agent0: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let fetch = |path: &str| {
        agent0
            .get(&format!("{addr}{path}"))
            .header("Authorization", format!("Bearer {admin}"))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    };
    // The checkpoint signed at this promotion; a later one must extend it.
    let old_checkpoint = fetch("/api/v1/audit/checkpoint");
    let o = cli(&["promote", "tiny@1", "--alias", "staging"], &addr, &approver, d);
    assert!(o.status.success(), "{}", text(&o));

    // Aliases: list, show with history, remove (approver only).
    let o = cli(&["alias", "tiny"], &addr, &reader, d);
    assert_eq!(
        text(&o).lines().filter(|l| l.contains("-> version 1")).count(),
        2,
        "{}",
        text(&o)
    );
    let o = cli(&["alias", "tiny", "production"], &addr, &reader, d);
    assert!(text(&o).contains("tiny@production -> version 1"), "{}", text(&o));
    assert!(
        text(&o).contains("version 1  by rm"),
        "history names who promoted: {}",
        text(&o)
    );
    let o = cli(&["alias", "tiny", "staging", "--delete"], &addr, &reader, d);
    assert_eq!(o.status.code(), Some(2), "a reader cannot remove aliases: {}", text(&o));
    let o = cli(&["alias", "tiny", "staging", "--delete"], &addr, &approver, d);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["alias", "tiny"], &addr, &reader, d);
    assert!(!text(&o).contains("staging"), "{}", text(&o));

    // Tags on the model and on a version; readers see them, only publishers change them.
    let o = cli(&["tag", "tiny", "team=risk", "tier=1"], &addr, &publisher, d);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(
        &["tag", "tiny@1", "validated=yes", "candidate=true"],
        &addr,
        &publisher,
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["tag", "tiny@1", "--delete", "candidate"], &addr, &publisher, d);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["tag", "tiny"], &addr, &reader, d);
    assert_eq!(
        text(&o).lines().filter(|l| *l == "team=risk" || *l == "tier=1").count(),
        2,
        "{}",
        text(&o)
    );
    let o = cli(&["tag", "tiny@1"], &addr, &reader, d);
    assert!(
        text(&o).contains("validated=yes") && !text(&o).contains("candidate"),
        "{}",
        text(&o)
    );
    let o = cli(&["tag", "tiny", "team=other"], &addr, &reader, d);
    assert_eq!(o.status.code(), Some(2), "a reader cannot tag: {}", text(&o));
    let o = cli(&["tag", "tiny@7", "x=y"], &addr, &publisher, d);
    assert!(text(&o).contains("404"), "no such version: {}", text(&o));

    let o = cli(&["pull", "tiny@production", "-o", "pulled"], &addr, &reader, d);
    assert!(o.status.success(), "{}", text(&o));
    let digest = |p: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["digest", "-q"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(digest(&d.join("pulled")), digest(&model));

    // The audit log verifies online, and an edited export does not.
    let o = cli(&["audit", "verify", "--key", vkey.trim()], &addr, &admin, d);
    assert!(o.status.success(), "{}", text(&o));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let events = agent
        .get(&format!("{addr}/api/v1/audit/events"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let checkpoint = agent
        .get(&format!("{addr}/api/v1/audit/checkpoint"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    std::fs::write(d.join("cp.txt"), &checkpoint).unwrap();
    std::fs::write(d.join("events.json"), &events).unwrap();
    let o = cli(
        &[
            "audit",
            "verify",
            "--key",
            vkey.trim(),
            "--events",
            "events.json",
            "--checkpoint",
            "cp.txt",
        ],
        &addr,
        "",
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(d.join("events.json"), events.replacen("\"denied\"", "\"allowed\"", 1)).unwrap();
    let o = cli(
        &[
            "audit",
            "verify",
            "--key",
            vkey.trim(),
            "--events",
            "events.json",
            "--checkpoint",
            "cp.txt",
        ],
        &addr,
        "",
        d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Offline proofs: one event's inclusion under the latest checkpoint, and that the
    // latest checkpoint extends the one signed at the first promotion.
    let size_of = |note: &str| note.lines().nth(1).unwrap().parse::<u64>().unwrap();
    let (old_size, new_size) = (size_of(&old_checkpoint), size_of(&checkpoint));
    assert!(old_size < new_size);
    let all: Vec<serde_json::Value> = serde_json::from_str(&events).unwrap();
    let seq = 3;
    std::fs::write(d.join("event.json"), all[seq].to_string()).unwrap();
    std::fs::write(
        d.join("incl.json"),
        fetch(&format!("/api/v1/audit/proof/inclusion?seq={seq}&size={new_size}")),
    )
    .unwrap();
    std::fs::write(
        d.join("cons.json"),
        fetch(&format!(
            "/api/v1/audit/proof/consistency?from={old_size}&to={new_size}"
        )),
    )
    .unwrap();
    std::fs::write(d.join("old-cp.txt"), &old_checkpoint).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--key", vkey.trim(), "--checkpoint", "cp.txt"];
        args.extend_from_slice(extra);
        cli(&args, &addr, "", d)
    };
    let o = verify(&["--event", "event.json", "--proof", "incl.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&["--old-checkpoint", "old-cp.txt", "--proof", "cons.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut edited = all[seq].clone();
    edited["actor"] = "someone-else".into();
    std::fs::write(d.join("event.json"), edited.to_string()).unwrap();
    let o = verify(&["--event", "event.json", "--proof", "incl.json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an edited event is not in the log: {}",
        text(&o)
    );
    let o = verify(&["--old-checkpoint", "old-cp.txt", "--proof", "incl.json"]);
    assert_eq!(o.status.code(), Some(1), "a wrong proof does not verify: {}", text(&o));

    // Rotate the key-encryption key with the server stopped; pulls still work after.
    assert_eq!(stop(&mut server), 0);
    let kek_before = std::fs::read(home.join("keys/kek")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["keys", "rotate", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rotated: 8 data keys"), "{}", text(&o));
    assert_ne!(std::fs::read(home.join("keys/kek")).unwrap(), kek_before);
    let (mut server, addr, _) = start(&home, false);
    let o = cli(&["pull", "tiny@1", "-o", "again"], &addr, &reader, d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stop(&mut server), 0);
}

#[test]
fn sigkill_during_a_push_leaves_no_partial_state() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let (mut server, addr, admin) = start(&home, true);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    // Something in the audit log first.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let st = agent
        .post(&format!("{addr}/api/v1/models"))
        .header("Authorization", format!("Bearer {admin}"))
        .send_json(serde_json::json!({ "name": "m" }))
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 201);
    // Start a 64 MiB upload by hand and stop sending half-way.
    let host = addr.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(host).unwrap();
    let digest = "ab".repeat(32);
    write!(sock, "PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {admin}\r\nContent-Length: {}\r\n\r\n", 64 << 20).unwrap();
    sock.write_all(&vec![7u8; 32 << 20]).unwrap();
    sock.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tmp_files = std::fs::read_dir(home.join("store/tmp")).unwrap().count();
    assert!(tmp_files > 0, "the upload is in progress in a temporary file");
    server.kill().unwrap();
    server.wait().unwrap();
    drop(sock);

    let (mut server, addr, _) = start(&home, false);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    assert_eq!(
        std::fs::read_dir(home.join("store/tmp")).unwrap().count(),
        0,
        "temporary files are removed at start"
    );
    let blobs: Vec<_> = std::fs::read_dir(home.join("store/blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "no blob from the interrupted push");
    let st = agent
        .get(&format!("{addr}/api/v1/blobs/{digest}"))
        .header("Authorization", format!("Bearer {admin}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404);
    let vkey = get(&format!("{addr}/api/v1/audit/key"));
    let o = cli(&["audit", "verify", "--key", vkey.trim()], &addr, &admin, t.path());
    assert!(o.status.success(), "the audit log still verifies: {}", text(&o));
    assert_eq!(stop(&mut server), 0);
}
