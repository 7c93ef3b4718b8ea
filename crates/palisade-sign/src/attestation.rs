//! Signed attestations about a model: an in-toto statement whose subject is the model's
//! root digest (the same digest its OpenSSF model signature names) and whose predicate is
//! a report, in a Sigstore bundle. Scan results use [`SCAN_PREDICATE_TYPE`]; later stages
//! (data checks, evaluations) add their own predicate types and reuse these functions.

use palisade_core::attest::{ResourceDescriptor, Statement};

use crate::bundle::Bundle;
use crate::model::{self, SignError, Signer, Trust, VerifyError};
use crate::serialize::Manifest;

/// Predicate type of a Palisade scan attestation; the predicate is documented in
/// docs/attestations.md.
pub const SCAN_PREDICATE_TYPE: &str = "https://palisade.dev/attestation/scan/v1";

/// Predicate type of an AI-BOM attestation: the predicate is a CycloneDX document (the
/// type the in-toto attestation framework lists for CycloneDX BOMs).
pub const BOM_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

/// The subject every attestation about `manifest` uses.
pub fn subject(manifest: &Manifest) -> ResourceDescriptor {
    ResourceDescriptor::sha256(manifest.model_name.clone(), manifest.root_digest_hex())
}

/// Signs a predicate about a model.
pub fn attest(
    manifest: &Manifest,
    predicate_type: &str,
    predicate: serde_json::Value,
    signer: &Signer,
) -> Result<Bundle, SignError> {
    let statement = Statement::new(subject(manifest), predicate_type, predicate);
    let envelope = palisade_core::attest::sign_statement(&statement, &signer.key)?;
    let material = signer.material()?;
    Ok(Bundle::new(material, envelope))
}

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("the attestation is about {found}, not this model (sha256:{expected})")]
    Subject { expected: String, found: String },
}

/// Verifies an attestation's signature and predicate type and, when `digest` is given
/// (hex SHA-256 root digest), that the attestation is about that model.
pub fn verify(
    bundle: &Bundle,
    trust: &Trust,
    predicate_type: &str,
    digest: Option<&str>,
) -> Result<(Statement, String), AttestationError> {
    let (statement, signer) = model::verify_bundle(bundle, trust, predicate_type)?;
    if let Some(expected) = digest {
        let ok = statement
            .subject
            .iter()
            .any(|s| s.digest.get("sha256").is_some_and(|d| d.eq_ignore_ascii_case(expected)));
        if !ok {
            let found = statement.subjects();
            return Err(AttestationError::Subject {
                expected: expected.to_owned(),
                found,
            });
        }
    }
    Ok((statement, signer))
}
