//! Attestations: in-toto Statement v1 inside a DSSE envelope.
//!
//! Every piece of evidence Palisade produces about an artifact (a model signature, a scan
//! result, later data checks and evaluations) is one of these: a statement whose subject is
//! the artifact's digest and whose predicate is the report, signed as a DSSE envelope.
//! The types here are the wire format only; keys and signature algorithms live in
//! `palisade-sign`, which implements [`DsseSigner`] and [`DsseVerifier`].
//!
//! References: in-toto Statement v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>) and the DSSE
//! protocol (<https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// An in-toto Statement v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// Serialized with object keys sorted at every depth, whatever order the value was
    /// built in (and whether or not serde_json's `preserve_order` is on somewhere in the
    /// build): the signed bytes must not depend on feature unification.
    #[serde(default, serialize_with = "serialize_sorted")]
    pub predicate: serde_json::Value,
}

/// A copy of `v` whose objects list their keys in sorted order at every depth.
pub fn sorted_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted_json(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted_json).collect()),
        other => other.clone(),
    }
}

fn serialize_sorted<S: serde::Serializer>(v: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&sorted_json(v), s)
}

impl Statement {
    /// The subjects for messages: `name sha256:HEX, …`.
    pub fn subjects(&self) -> String {
        self.subject
            .iter()
            .map(|s| {
                format!(
                    "{} sha256:{}",
                    s.name,
                    s.digest.get("sha256").map(String::as_str).unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A v1 statement about one subject.
    pub fn new(subject: ResourceDescriptor, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Statement {
            statement_type: STATEMENT_TYPE_V1.to_owned(),
            subject: vec![subject],
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }
}

/// An in-toto ResourceDescriptor, reduced to what subjects need: a name and digests
/// keyed by algorithm (`sha256` → lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl ResourceDescriptor {
    pub fn sha256(name: impl Into<String>, hex: impl Into<String>) -> Self {
        ResourceDescriptor {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_owned(), hex.into())]),
        }
    }
}

/// A DSSE envelope in its JSON form (payload and signatures base64, standard alphabet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub sig: String,
    #[serde(default)]
    pub keyid: String,
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`,
/// lengths as ASCII decimals of byte counts.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Something that signs DSSE pre-authentication encodings.
pub trait DsseSigner {
    /// The signature over `message` in the key's usual encoding (DER for ECDSA).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AttestError>;
}

/// Something that checks a signature over a DSSE pre-authentication encoding.
pub trait DsseVerifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), AttestError>;
}

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("the envelope has no signature")]
    NoSignature,
    #[error("the envelope's {0} is not valid base64")]
    Base64(&'static str),
    #[error("the signature does not verify with the given key (signed by another key, or the envelope was altered)")]
    BadSignature,
    #[error("payload type is {found:?}, expected {expected:?}")]
    PayloadType { found: String, expected: String },
    #[error("the payload is not an in-toto statement: {0}")]
    Statement(String),
    #[error("statement type is {0:?}, expected {STATEMENT_TYPE_V1:?}")]
    StatementType(String),
    #[error("predicate type is {found:?}, expected {expected:?}")]
    PredicateType { found: String, expected: String },
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Serialises `statement`, signs its PAE and wraps both in an envelope.
pub fn sign_statement(statement: &Statement, signer: &dyn DsseSigner) -> Result<Envelope, AttestError> {
    let payload = serde_json::to_vec_pretty(statement).map_err(|e| AttestError::Statement(e.to_string()))?;
    sign_payload(IN_TOTO_PAYLOAD_TYPE, &payload, signer)
}

/// Signs raw payload bytes of the given type.
pub fn sign_payload(payload_type: &str, payload: &[u8], signer: &dyn DsseSigner) -> Result<Envelope, AttestError> {
    let sig = signer.sign(&pae(payload_type, payload))?;
    Ok(Envelope {
        payload: B64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            sig: B64.encode(sig),
            keyid: String::new(),
        }],
    })
}

impl Envelope {
    /// Checks that one of the envelope's signatures verifies over the PAE of its payload
    /// and returns the payload bytes. Nothing in the payload is trusted before this.
    pub fn verify(&self, verifier: &dyn DsseVerifier) -> Result<Vec<u8>, AttestError> {
        if self.signatures.is_empty() {
            return Err(AttestError::NoSignature);
        }
        let payload = B64
            .decode(self.payload.trim())
            .map_err(|_| AttestError::Base64("payload"))?;
        let message = pae(&self.payload_type, &payload);
        for s in &self.signatures {
            let sig = B64.decode(s.sig.trim()).map_err(|_| AttestError::Base64("signature"))?;
            if verifier.verify(&message, &sig).is_ok() {
                return Ok(payload);
            }
        }
        Err(AttestError::BadSignature)
    }

    /// Verifies the envelope and parses its payload as an in-toto Statement v1 with the
    /// expected predicate type.
    pub fn verify_statement(
        &self,
        verifier: &dyn DsseVerifier,
        predicate_type: &str,
    ) -> Result<Statement, AttestError> {
        let payload = self.verify(verifier)?;
        parse_statement(&self.payload_type, &payload, predicate_type)
    }
}

/// Parses verified payload bytes as an in-toto Statement v1 with the expected predicate.
pub fn parse_statement(payload_type: &str, payload: &[u8], predicate_type: &str) -> Result<Statement, AttestError> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttestError::PayloadType {
            found: payload_type.to_owned(),
            expected: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        });
    }
    let statement: Statement = serde_json::from_slice(payload).map_err(|e| AttestError::Statement(e.to_string()))?;
    if statement.statement_type != STATEMENT_TYPE_V1 {
        return Err(AttestError::StatementType(statement.statement_type));
    }
    if statement.predicate_type != predicate_type {
        return Err(AttestError::PredicateType {
            found: statement.predicate_type,
            expected: predicate_type.to_owned(),
        });
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed statement's bytes do not depend on the order a predicate was built in.
    #[test]
    fn predicates_serialize_with_sorted_keys() {
        let mut a = serde_json::Map::new();
        a.insert("zeta".into(), serde_json::json!(1));
        a.insert("alpha".into(), serde_json::json!({ "y": 1, "b": [{ "d": 1, "c": 2 }] }));
        let st = Statement::new(
            ResourceDescriptor::sha256("m", "00"),
            "https://example.test/p",
            serde_json::Value::Object(a),
        );
        let text = String::from_utf8(serde_json::to_vec(&st).unwrap()).unwrap();
        assert!(
            text.ends_with(r#""predicate":{"alpha":{"b":[{"c":2,"d":1}],"y":1},"zeta":1}}"#),
            "{text}"
        );
    }

    /// The DSSE spec's worked example: payload type `http://example.com/HelloWorld`,
    /// payload `hello world`.
    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    struct Xor(u8);
    impl DsseSigner for Xor {
        fn sign(&self, m: &[u8]) -> Result<Vec<u8>, AttestError> {
            Ok(vec![m.iter().fold(self.0, |a, b| a ^ b)])
        }
    }
    impl DsseVerifier for Xor {
        fn verify(&self, m: &[u8], s: &[u8]) -> Result<(), AttestError> {
            if s == [m.iter().fold(self.0, |a, b| a ^ b)] {
                Ok(())
            } else {
                Err(AttestError::BadSignature)
            }
        }
    }

    #[test]
    fn statements_round_trip_and_predicate_types_are_enforced() {
        let st = Statement::new(
            ResourceDescriptor::sha256("m", "ab"),
            "https://example/p/v1",
            serde_json::json!({"k": 1}),
        );
        let env = sign_statement(&st, &Xor(7)).unwrap();
        assert_eq!(env.verify_statement(&Xor(7), "https://example/p/v1").unwrap(), st);
        assert!(matches!(
            env.verify_statement(&Xor(7), "https://other"),
            Err(AttestError::PredicateType { .. })
        ));
        let mut tampered = env.clone();
        tampered.payload_type = "text/plain".into();
        assert!(matches!(tampered.verify(&Xor(7)), Err(AttestError::BadSignature)));
        assert!(matches!(env.verify(&Xor(8)), Err(AttestError::BadSignature)));
    }
}
