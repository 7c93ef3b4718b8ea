//! `palisade serve` as a process: first start prints an admin key once, health answers
//! without credentials, the API does not, and SIGTERM shuts down cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{start, status, stop};

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
