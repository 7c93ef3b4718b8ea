//! `palisade.toml`: unknown keys are rejected, every key is documented in
//! `docs/configuration.md`. Precedence: command-line flag > environment > file > default.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use palisade_core::Severity;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub scan: ScanConfig,
    /// Findings to suppress, each with a reason.
    #[serde(default)]
    pub ignore: Vec<Ignore>,
    /// `palisade guard` and the gateway's guardrails (docs/guard.md).
    #[serde(default)]
    pub guard: palisade_guard::GuardConfig,
    #[serde(default)]
    pub serve: ServeConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub client: ClientConfig,
    /// The inference gateway (docs/gateway.md).
    #[serde(default)]
    pub gateway: palisade_gateway::config::GatewayConfig,
}

/// `[client]`: where the registry commands (`push`, `pull`, …) connect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Registry URL.
    pub server: Option<String>,
    /// A file holding the API key or token (never the key itself in the config file).
    pub token_file: Option<PathBuf>,
}

/// The `--config` given on the command line, for commands that load the config lazily.
static EXPLICIT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Records the command line's `--config` (once, at start).
pub fn set_explicit(path: Option<PathBuf>) {
    let _ = EXPLICIT.set(path);
}

/// The config named on the command line, or the default one.
pub fn load_global() -> Result<Config> {
    Config::load(EXPLICIT.get().and_then(|p| p.as_deref())).map(|(c, _)| c)
}

/// `[serve]`: the registry server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub home: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub blob_store: Option<String>,
    pub max_blob_size: Option<String>,
    pub checkpoint_interval: Option<u64>,
    /// HTTPS, optionally with client certificates (`[serve.tls]`).
    pub tls: Option<palisade_gateway::server::TlsConfig>,
    /// Request headers must arrive within this many seconds (default 10).
    pub header_timeout_secs: Option<u64>,
    /// Largest request head in bytes (default 32768).
    pub max_header_bytes: Option<usize>,
    /// Most open connections (default 10000).
    pub max_connections: Option<usize>,
    /// Worker threads (default: one per CPU).
    pub workers: Option<usize>,
    /// `work-stealing` (default) or `per-thread`: see `palisade serve --help`.
    pub threading: Option<palisade_gateway::server::Threading>,
}

/// `[auth]`: who may call the servers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Cedar policy files added to the built-in role policies.
    #[serde(default)]
    pub policy_files: Vec<PathBuf>,
    /// Accept OIDC/JWT bearer tokens (`[auth.jwt]`).
    pub jwt: Option<palisade_auth::JwtConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    pub fail_on: Option<Severity>,
    pub max_file_size: Option<String>,
    pub timeout: Option<String>,
    pub jobs: Option<usize>,
    /// Organisation allowlist additions: `package.module.name` or `package.module.*`.
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// A rule code (`PKL003`) or a code prefix (`PKL`).
    pub code: String,
    /// A glob matched against the reported path (`models/legacy/**`); `**` matches all.
    pub path: String,
    /// Why this is acceptable; required.
    pub reason: String,
}

impl Config {
    /// Loads the explicit config, or `./palisade.toml` when present, or defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let default = PathBuf::from("palisade.toml");
                if !default.is_file() {
                    return Ok((Config::default(), None));
                }
                default
            }
        };
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let config = Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        Ok((config, Some(path)))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        for (i, ig) in config.ignore.iter().enumerate() {
            if ig.reason.trim().is_empty() {
                bail!(
                    "[[ignore]] entry {} ({} at {}) needs a non-empty `reason`",
                    i + 1,
                    ig.code,
                    ig.path
                );
            }
            if ig.code.trim().is_empty() {
                bail!("[[ignore]] entry {} needs a `code`", i + 1);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let c = Config::parse(
            r#"
            [scan]
            fail_on = "high"
            max_file_size = "2GiB"
            timeout = "30s"
            jobs = 4
            allow = ["acme.models.*"]

            [[ignore]]
            code = "PKL003"
            path = "legacy/**"
            reason = "reviewed in SEC-123"

            [serve]
            home = "/var/lib/palisade"
            listen = "0.0.0.0:8080"
            max_blob_size = "8GiB"
            checkpoint_interval = 30

            [auth]
            policy_files = ["ops.cedar"]

            [auth.jwt]
            issuer = "https://idp.example.com"
            audience = ["palisade"]
            jwks_url = "https://idp.example.com/jwks"
            "#,
        )
        .unwrap();
        assert_eq!(c.scan.fail_on, Some(Severity::High));
        assert_eq!(c.ignore.len(), 1);
        assert_eq!(c.serve.checkpoint_interval, Some(30));
        let jwt = c.auth.jwt.unwrap();
        assert_eq!(jwt.roles_claim, "roles", "defaults fill what the file leaves out");
        assert!(Config::parse("[auth.jwt]\nissuer = \"x\"\naudience = [\"y\"]\njwks = \"z\"\n").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::parse("[scan]\nfail_onn = \"high\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("fail_onn"), "{err:#}");
        assert!(Config::parse("[scanner]\n").is_err());
    }

    #[test]
    fn ignore_needs_a_reason() {
        let err = Config::parse("[[ignore]]\ncode = \"PKL003\"\npath = \"**\"\nreason = \" \"\n").unwrap_err();
        assert!(format!("{err:#}").contains("reason"));
        assert!(Config::parse("[[ignore]]\ncode = \"PKL003\"\npath = \"**\"\n").is_err());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let c = Config::parse(include_str!("../../../docs/palisade.example.toml")).unwrap();
        assert_eq!(c.scan.fail_on, Some(Severity::Low));
        assert_eq!(c.scan.allow.len(), 2);
        assert_eq!(c.ignore[0].code, "PKL003");
        // The gateway example is a configuration that would start.
        c.gateway.validate().unwrap();
        assert_eq!(c.gateway.models.len(), 2);
        assert_eq!(c.gateway.rate_limits[1].scope, palisade_gateway::config::Scope::Model);
    }
}
