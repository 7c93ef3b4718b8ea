//! The tamper-evident audit log: every mutation and every denied request is an [`Event`],
//! appended as a leaf of an RFC 6962 Merkle tree (leaf = SHA-256(0x00 ‖ canonical event
//! JSON)), with signed checkpoints in the C2SP `tlog-checkpoint` / `signed-note` format
//! (Ed25519), so that anyone holding the log's public key can check offline that the log
//! they were given is the log that was signed, and that a later log extends an earlier one.
//!
//! References: RFC 6962 §2.1, RFC 9162 §2.1; C2SP signed-note and tlog-checkpoint
//! (<https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use palisade_core::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// One audited decision or change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the log (0-based), equal to the Merkle leaf index.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// Who: an API key id, a token subject, or `system`.
    pub actor: String,
    /// What was attempted, e.g. `push`, `promote`, `pull`.
    pub action: String,
    /// On what, e.g. `model/fraud@3`.
    pub target: String,
    /// `allowed`, `denied` or `tamper`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub detail: BTreeMap<String, serde_json::Value>,
}

impl Event {
    /// The canonical bytes hashed into the log: JSON with sorted keys and no whitespace.
    pub fn canonical(&self) -> Vec<u8> {
        let v = serde_json::to_value(self).unwrap_or_default();
        canonical_json(&v)
    }

    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical())
    }
}

/// Serialises with object keys sorted at every depth (serde_json's maps are sorted unless
/// its `preserve_order` feature is on, so sort explicitly).
fn canonical_json(v: &serde_json::Value) -> Vec<u8> {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> = m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(v)).unwrap_or_default()
}

/// The signing side of a log.
pub struct LogSigner {
    name: String,
    key: ed25519_dalek::SigningKey,
}

/// The verifying side: the C2SP verifier key `name+keyid+base64(0x01 ‖ pubkey)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerifier {
    name: String,
    key_id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    #[error("malformed verifier key: {0}")]
    VerifierKey(String),
    #[error("no signature on the checkpoint verifies with key {0}")]
    Signature(String),
    #[error("event {index}: {reason}")]
    Event { index: usize, reason: String },
    #[error("the log's {size} events hash to {computed}, but the signed checkpoint says {signed}")]
    RootMismatch {
        size: u64,
        computed: String,
        signed: String,
    },
    #[error("the checkpoint covers {checkpoint} events but the log has only {log}")]
    Short { checkpoint: u64, log: u64 },
    #[error("consistency proof from {old} to {new} events does not verify: the log was rewritten")]
    Inconsistent { old: u64, new: u64 },
    #[error("inclusion proof of event {seq} in the log of {size} events does not verify")]
    NotIncluded { seq: u64, size: u64 },
}

impl LogSigner {
    /// `name` is the checkpoint origin and key name, e.g. `palisade.example/registry`.
    pub fn generate(name: &str) -> Self {
        LogSigner {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    pub fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        LogSigner {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verifier(&self) -> LogVerifier {
        let key = self.key.verifying_key();
        LogVerifier {
            name: self.name.clone(),
            key_id: key_id(&self.name, key.as_bytes()),
            key,
        }
    }

    /// A signed checkpoint (C2SP tlog-checkpoint) for a tree of `size` leaves.
    pub fn checkpoint(&self, size: u64, root: &Hash) -> String {
        let body = format!("{}\n{}\n{}\n", self.name, size, B64.encode(root));
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().key_id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A verified checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl LogVerifier {
    /// Parses `name+hexkeyid+base64(0x01 ‖ 32-byte key)`.
    pub fn parse(vkey: &str) -> Result<Self, AuditError> {
        let bad = |m: &str| AuditError::VerifierKey(m.to_owned());
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+keyid+key"));
        };
        let key = B64.decode(key).map_err(|_| bad("key is not base64"))?;
        let [0x01, rest @ ..] = key.as_slice() else {
            return Err(bad("not an Ed25519 key (type byte 0x01)"));
        };
        let public: [u8; 32] = rest.try_into().map_err(|_| bad("Ed25519 keys are 32 bytes"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| bad("invalid Ed25519 point"))?;
        let expected = key_id(name, &public);
        if hex::encode(expected) != id.to_ascii_lowercase() {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(LogVerifier {
            name: name.to_owned(),
            key_id: expected,
            key,
        })
    }

    pub fn to_vkey(&self) -> String {
        let mut k = vec![0x01];
        k.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id), B64.encode(k))
    }

    /// Verifies a signed checkpoint note and returns its contents.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, AuditError> {
        let bad = |m: &str| AuditError::Checkpoint(m.to_owned());
        let split = note
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (body, sigs) = (&note[..split + 1], &note[split + 2..]);
        let mut ok = false;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                continue;
            };
            let Some((name, sig)) = rest.rsplit_once(' ') else {
                continue;
            };
            if name != self.name {
                continue;
            }
            let Ok(sig) = B64.decode(sig) else { continue };
            if sig.len() != 68 || sig[..4] != self.key_id {
                continue;
            }
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig[4..]) else {
                continue;
            };
            if self.key.verify(body.as_bytes(), &sig).is_ok() {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(AuditError::Signature(self.name.clone()));
        }
        let mut lines = body.lines();
        let origin = lines.next().ok_or_else(|| bad("no origin line"))?.to_owned();
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no tree size line"))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .ok_or_else(|| bad("no root hash line"))?;
        let root: Hash = root
            .as_slice()
            .try_into()
            .map_err(|_| bad("root hash is not 32 bytes"))?;
        Ok(Checkpoint { origin, size, root })
    }
}

/// Verifies a whole exported log against a signed checkpoint: every event's position, the
/// Merkle root of the first `checkpoint.size` events, and the signature.
pub fn verify_log(events: &[Event], note: &str, verifier: &LogVerifier) -> Result<Checkpoint, AuditError> {
    let cp = verifier.verify(note)?;
    if (events.len() as u64) < cp.size {
        return Err(AuditError::Short {
            checkpoint: cp.size,
            log: events.len() as u64,
        });
    }
    let mut leaves = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(AuditError::Event {
                index: i,
                reason: format!("sequence number {} out of place", e.seq),
            });
        }
        leaves.push(e.leaf_hash());
    }
    let size = usize::try_from(cp.size).unwrap_or(usize::MAX);
    let computed = merkle::root(&leaves[..size]);
    if computed != cp.root {
        return Err(AuditError::RootMismatch {
            size: cp.size,
            computed: hex::encode(computed),
            signed: hex::encode(cp.root),
        });
    }
    Ok(cp)
}

/// Checks that `event` is in the log a checkpoint signs, at its `seq`, with an RFC 6962
/// inclusion proof (`GET /api/v1/audit/proof/inclusion?seq&size` with the checkpoint's size).
pub fn verify_included(event: &Event, cp: &Checkpoint, proof: &[Hash]) -> Result<(), AuditError> {
    if event.seq < cp.size && merkle::verify_inclusion(event.seq, cp.size, &event.leaf_hash(), proof, &cp.root) {
        Ok(())
    } else {
        Err(AuditError::NotIncluded {
            seq: event.seq,
            size: cp.size,
        })
    }
}

/// Checks that the log of a newer checkpoint extends the log of an older one.
pub fn verify_extends(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> Result<(), AuditError> {
    if merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof) {
        Ok(())
    } else {
        Err(AuditError::Inconsistent {
            old: old.size,
            new: new.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, action: &str) -> Event {
        Event {
            seq,
            time: "2026-11-22T05:00:00Z".into(),
            actor: "key:ci".into(),
            action: action.into(),
            target: "model/fraud@1".into(),
            outcome: "allowed".into(),
            detail: BTreeMap::from([
                ("z".into(), 1.into()),
                ("a".into(), serde_json::json!({"y": 2, "b": 3})),
            ]),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let c = String::from_utf8(event(0, "push").canonical()).unwrap();
        assert!(
            c.starts_with(r#"{"action":"push","actor":"key:ci","detail":{"a":{"b":3,"y":2},"z":1},"outcome""#),
            "{c}"
        );
    }

    #[test]
    fn checkpoints_sign_and_verify_and_vkeys_round_trip() {
        let s = LogSigner::from_seed("palisade.test/log", [7; 32]);
        let v = LogVerifier::parse(&s.verifier().to_vkey()).unwrap();
        let root = merkle::leaf_hash(b"x");
        let note = s.checkpoint(1, &root);
        assert!(note.starts_with("palisade.test/log\n1\n"));
        assert_eq!(
            v.verify(&note).unwrap(),
            Checkpoint {
                origin: "palisade.test/log".into(),
                size: 1,
                root
            }
        );
        let forged = note.replacen("\n1\n", "\n2\n", 1);
        assert!(matches!(v.verify(&forged), Err(AuditError::Signature(_))));
        let other = LogSigner::generate("palisade.test/log").verifier();
        assert!(other.verify(&note).is_err());
        assert!(LogVerifier::parse("name+00000000+AQ==").is_err());
    }

    #[test]
    fn logs_verify_and_every_rewrite_is_caught() {
        let s = LogSigner::generate("palisade.test/log");
        let v = s.verifier();
        let events: Vec<Event> = (0..7)
            .map(|i| event(i, if i % 2 == 0 { "push" } else { "pull" }))
            .collect();
        let leaves: Vec<Hash> = events.iter().map(Event::leaf_hash).collect();
        let old = s.checkpoint(4, &merkle::root(&leaves[..4]));
        let new = s.checkpoint(7, &merkle::root(&leaves));
        let (cp_old, cp_new) = (
            verify_log(&events, &old, &v).unwrap(),
            verify_log(&events, &new, &v).unwrap(),
        );
        let proof = merkle::consistency_proof(4, &leaves).unwrap();
        verify_extends(&cp_old, &cp_new, &proof).unwrap();

        // An edited event, a dropped event, reordered events.
        let mut edited = events.clone();
        edited[2].outcome = "denied".into();
        assert!(matches!(
            verify_log(&edited, &new, &v),
            Err(AuditError::RootMismatch { .. })
        ));
        assert!(matches!(
            verify_log(&events[..6], &new, &v),
            Err(AuditError::Short { .. })
        ));
        let mut swapped = events.clone();
        swapped.swap(1, 2);
        assert!(matches!(verify_log(&swapped, &new, &v), Err(AuditError::Event { .. })));
        // A history rewritten below an old checkpoint cannot be proven consistent with it.
        let rewritten: Vec<Hash> = edited.iter().map(Event::leaf_hash).collect();
        let cp_rewritten = Checkpoint {
            root: merkle::root(&rewritten),
            ..cp_new.clone()
        };
        let proof = merkle::consistency_proof(4, &rewritten).unwrap();
        assert!(verify_extends(&cp_old, &cp_rewritten, &proof).is_err());
    }
}
