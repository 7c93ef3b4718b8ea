//! Helpers for tests that run `palisade serve` as a process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Starts the server; returns it, its address, and its stdout (the admin key on a first
/// start; on a later one, a reader thread that returns whatever was printed).
pub fn start(
    home: &std::path::Path,
    first: bool,
) -> (
    std::process::Child,
    String,
    Result<String, std::thread::JoinHandle<String>>,
) {
    start_with(home, first, &[])
}

/// [`start`] with more `serve` arguments.
pub fn start_with(
    home: &std::path::Path,
    first: bool,
    extra: &[&str],
) -> (
    std::process::Child,
    String,
    Result<String, std::thread::JoinHandle<String>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--listen", "127.0.0.1:0", "--home"])
        .arg(home)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = String::new();
    let mut before = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if let Some((_, rest)) = line
            .split_once(" listening on ")
            .filter(|_| line.starts_with("palisade "))
        {
            addr = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
        before.push(line);
    }
    assert!(!addr.is_empty(), "no listening line:\n{}", before.join("\n"));
    // Keep draining stderr (access log, warnings) so the server never blocks on a full
    // pipe.
    std::thread::spawn(move || for _ in stderr {});
    // The first-start banner is written to stdout before the listening line.
    let mut reader = BufReader::new(stdout);
    let out = if first {
        let mut banner = String::new();
        reader.read_line(&mut banner).unwrap();
        assert!(banner.starts_with("First start"), "{banner}");
        let mut t = String::new();
        reader.read_line(&mut t).unwrap();
        Ok(t.trim().trim_start_matches("PALISADE_TOKEN=").to_owned())
    } else {
        Err(std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
            rest
        }))
    };
    (child, addr, out)
}

pub fn status(url: &str, token: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url);
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    r.call().unwrap().status().as_u16()
}

/// A request's status and JSON body.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = match body {
        Some(b) => agent.run(
            req.header("Content-Type", "application/json")
                .body(b.to_string())
                .unwrap(),
        ),
        None => agent.run(req.body(()).unwrap()),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

pub fn stop(child: &mut std::process::Child) -> i32 {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}
