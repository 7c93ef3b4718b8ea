//! Offline trust material for keyless (Sigstore) signatures: Fulcio certificate authorities
//! and Rekor transparency-log keys, read from PEM files or from a Sigstore
//! `trusted_root.json` (protobuf-specs `TrustedRoot`, the file sigstore clients get from
//! TUF), and the check of a bundle's transparency-log entry: the log's signed entry
//! timestamp (SET) over the entry, and the entry's payload hash against the envelope.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::cert::{Cert, CertError};
use crate::keys::VerifyingKey;

/// A Rekor log key and its log id (SHA-256 of the key's DER SubjectPublicKeyInfo).
#[derive(Clone, Debug)]
pub struct LogKey {
    pub log_id: Vec<u8>,
    pub key: VerifyingKey,
}

/// Everything a keyless verifier trusts.
#[derive(Default)]
pub struct TrustMaterial {
    pub certificate_authorities: Vec<Cert>,
    pub logs: Vec<LogKey>,
    /// Keys in the trust material this version cannot use (e.g. Ed25519 logs).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trusted root: {0}")]
    Parse(String),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("transparency-log entry: {0}")]
    Entry(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    #[serde(default)]
    base_url: String,
    public_key: PublicKeyJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyJson {
    #[serde(default)]
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    cert_chain: ChainJson,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<crate::bundle::RawBytes>,
}

impl TrustMaterial {
    /// Adds one file: a Sigstore `trusted_root.json`, or PEM certificates.
    pub fn add_file(&mut self, bytes: &[u8], name: &str) -> Result<(), TrustError> {
        let trimmed = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if trimmed == Some(&b'{') {
            return self.add_trusted_root(bytes);
        }
        self.certificate_authorities.extend(Cert::from_pem_chain(bytes, name)?);
        Ok(())
    }

    fn add_trusted_root(&mut self, bytes: &[u8]) -> Result<(), TrustError> {
        let root: TrustedRootJson = serde_json::from_slice(bytes).map_err(|e| TrustError::Parse(e.to_string()))?;
        for ca in root.certificate_authorities {
            for c in ca.cert_chain.certificates {
                let der = c.der().map_err(|e| TrustError::Parse(e.to_string()))?;
                self.certificate_authorities.push(Cert::from_der(&der)?);
            }
        }
        for log in root.tlogs {
            let der = B64
                .decode(log.public_key.raw_bytes.trim())
                .map_err(|_| TrustError::Parse("log key is not base64".into()))?;
            match VerifyingKey::from_spki_der(&der) {
                Ok(key) => self.logs.push(LogKey {
                    log_id: Sha256::digest(&der).to_vec(),
                    key,
                }),
                Err(_) => self
                    .skipped
                    .push(format!("{} ({})", log.base_url, log.public_key.key_details)),
            }
        }
        Ok(())
    }
}

/// A verified transparency-log entry.
pub struct LogEntry {
    pub integrated_time: u64,
    pub log_index: u64,
}

fn field<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn number(v: Option<&serde_json::Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Finds a `payloadHash` object anywhere in the entry body (dsse and intoto kinds put it
/// at different depths).
fn payload_hashes(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                if k == "payloadHash" {
                    if let Some(h) = child.get("value").and_then(|h| h.as_str()) {
                        out.push(h.to_ascii_lowercase());
                    }
                }
                payload_hashes(child, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|c| payload_hashes(c, out)),
        _ => {}
    }
}

/// Checks a bundle's tlog entry (JSON as in the bundle) against the trusted logs: the
/// signed entry timestamp must verify with the log's key, and the entry must record the
/// SHA-256 of this envelope's payload.
pub fn verify_entry(entry: &serde_json::Value, logs: &[LogKey], payload: &[u8]) -> Result<LogEntry, TrustError> {
    let bad = |m: &str| TrustError::Entry(m.to_owned());
    let log_id = field(entry, &["logId", "keyId"])
        .and_then(|k| k.as_str())
        .ok_or_else(|| bad("no logId"))?;
    let log_id = B64.decode(log_id).map_err(|_| bad("logId is not base64"))?;
    let log = logs.iter().find(|l| l.log_id == log_id).ok_or_else(|| {
        TrustError::Entry(format!(
            "made by a log not in the trust material (log id {})",
            hex::encode(&log_id)
        ))
    })?;
    let body = entry
        .get("canonicalizedBody")
        .and_then(|b| b.as_str())
        .ok_or_else(|| bad("no canonicalizedBody"))?;
    let time = number(entry.get("integratedTime")).ok_or_else(|| bad("no integratedTime"))?;
    let index = number(entry.get("logIndex")).ok_or_else(|| bad("no logIndex"))?;
    let set = field(entry, &["inclusionPromise", "signedEntryTimestamp"])
        .and_then(|s| s.as_str())
        .ok_or_else(|| bad("no signed entry timestamp (inclusionPromise); entries with only an inclusion proof are not checked offline"))?;
    let set = B64.decode(set).map_err(|_| bad("signedEntryTimestamp is not base64"))?;
    // What Rekor signs: the canonical JSON (sorted keys, no spaces) of these four fields.
    let message = serde_json::to_vec(&palisade_core::attest::sorted_json(&serde_json::json!({
        "body": body,
        "integratedTime": time,
        "logID": hex::encode(&log_id),
        "logIndex": index,
    })))
    .map_err(|e| TrustError::Entry(e.to_string()))?;
    use palisade_core::attest::DsseVerifier as _;
    log.key
        .verify(&message, &set)
        .map_err(|_| bad("the log's signed entry timestamp does not verify"))?;
    let body = B64.decode(body).map_err(|_| bad("canonicalizedBody is not base64"))?;
    let body: serde_json::Value = serde_json::from_slice(&body).map_err(|_| bad("canonicalizedBody is not JSON"))?;
    let mut hashes = Vec::new();
    payload_hashes(&body, &mut hashes);
    let ours = hex::encode(Sha256::digest(payload));
    if !hashes.contains(&ours) {
        return Err(bad("the logged entry is for another payload"));
    }
    Ok(LogEntry {
        integrated_time: time,
        log_index: index,
    })
}
