//! `palisade serve` as a process: first start prints an admin key once, health answers
//! without credentials, the API does not, and SIGTERM shuts down cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Starts the server; returns it, its address, and its stdout (the admin key on a first
/// start; on a later one, a reader thread that returns whatever was printed).
fn start(
    home: &std::path::Path,
    first: bool,
) -> (
    std::process::Child,
    String,
    Result<String, std::thread::JoinHandle<String>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--listen", "127.0.0.1:0", "--home"])
        .arg(home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("palisade registry listening on ") {
            addr = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
    }
    assert!(!addr.is_empty(), "no listening line");
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

fn status(url: &str, token: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url);
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    r.call().unwrap().status().as_u16()
}

fn stop(child: &mut std::process::Child) -> i32 {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn serve_first_start_health_auth_and_clean_shutdown() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, addr, token) = start(&home.path().join("h"), true);
    let token = token.unwrap_or_else(|_| panic!("first start prints the admin key"));
    assert!(token.starts_with("pk_"));
    assert_eq!(status(&format!("{addr}/health"), None), 200);
    assert_eq!(status(&format!("{addr}/api/v1/models"), None), 401);
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(&token)), 200);
    assert_eq!(stop(&mut child), 0);
    // Second start: no new key, the old one still works.
    let (mut child, addr, again) = start(&home.path().join("h"), false);
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(&token)), 200);
    assert_eq!(stop(&mut child), 0);
    let printed = again.err().unwrap().join().unwrap();
    assert!(
        !printed.contains("PALISADE_TOKEN"),
        "a second start printed a key: {printed}"
    );
}
