//! Promotion gates: per model and alias, the evidence a version needs before the alias may
//! point at it. Evidence is the bundles uploaded for the version — OpenSSF model
//! signatures and Palisade attestations, the formats of `palisade sign` and
//! `palisade scan --attest` — verified here, at promotion, against the gate's trusted keys.
//! `promote` refuses with every unmet requirement listed.

use palisade_core::Severity;
use palisade_sign::attestation::{BOM_PREDICATE_TYPE, SCAN_PREDICATE_TYPE};
use palisade_sign::model::{self, Trust, PREDICATE_TYPE as SIGNATURE_PREDICATE};
use palisade_sign::{Bundle, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::meta::ModelVersion;

/// A gate policy (stored as JSON per model and alias).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    /// A model signature by one of these keys (PEM public keys) over exactly this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<KeysRequirement>,
    /// A scan attestation by one of these keys, complete, with no finding at or above
    /// `fail_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanRequirement>,
    /// A CycloneDX AI-BOM attestation (`palisade bom --attest`) over exactly this version by
    /// one of these keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bom: Option<KeysRequirement>,
    /// The approver must not be the version's publisher.
    #[serde(default)]
    pub separation_of_duties: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysRequirement {
    pub trusted_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequirement {
    pub trusted_keys: Vec<String>,
    /// Lowest severity that blocks promotion (`info`, `low`, `medium`, `high`, `critical`).
    #[schema(value_type = String)]
    pub fail_on: Severity,
}

impl GatePolicy {
    /// Parses and checks that every trusted key is a usable public key.
    pub fn parse(json: &str) -> Result<Self, String> {
        let p: GatePolicy = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for k in p
            .signature
            .iter()
            .flat_map(|s| &s.trusted_keys)
            .chain(p.scan.iter().flat_map(|s| &s.trusted_keys))
            .chain(p.bom.iter().flat_map(|s| &s.trusted_keys))
        {
            VerifyingKey::from_pem(k).map_err(|e| format!("trusted key: {e}"))?;
        }
        Ok(p)
    }
}

fn keys(pems: &[String]) -> Vec<VerifyingKey> {
    pems.iter().filter_map(|k| VerifyingKey::from_pem(k).ok()).collect()
}

/// The requirements `version` does not meet for promotion by `approver`.
pub fn unmet(policy: &GatePolicy, version: &ModelVersion, bundles: &[String], approver: &str) -> Vec<String> {
    let parsed: Vec<Bundle> = bundles
        .iter()
        .filter_map(|b| Bundle::from_json(b.as_bytes()).ok())
        .collect();
    let mut out = Vec::new();
    if let Some(req) = &policy.signature {
        let ok = keys(&req.trusted_keys).into_iter().any(|k| {
            let trust = Trust::Key(k);
            parsed.iter().any(|b| {
                model::verify_bundle(b, &trust, SIGNATURE_PREDICATE)
                    .ok()
                    .and_then(|(st, _)| model::manifest_from_statement(&st).ok())
                    .is_some_and(|m| {
                        m.serialization.method == "files"
                            && m.serialization.hash_type == "sha256"
                            && m.root_digest_hex() == version.digest
                    })
            })
        });
        if !ok {
            out.push("a model signature (files, SHA-256) over this version by a trusted key".to_owned());
        }
    }
    if let Some(req) = &policy.scan {
        let mut found_any = false;
        let mut clean = false;
        for k in keys(&req.trusted_keys) {
            let trust = Trust::Key(k);
            for b in &parsed {
                let Ok((st, _)) =
                    palisade_sign::attestation::verify(b, &trust, SCAN_PREDICATE_TYPE, Some(&version.digest))
                else {
                    continue;
                };
                found_any = true;
                let highest: Option<Severity> = st
                    .predicate
                    .get("highestSeverity")
                    .and_then(|s| serde_json::from_value(s.clone()).ok());
                let complete = st.predicate.get("result").and_then(|r| r.as_str()) != Some("incomplete");
                if complete && highest.is_none_or(|h| h < req.fail_on) {
                    clean = true;
                }
            }
        }
        if !clean {
            out.push(if found_any {
                format!("a complete scan attestation with no finding at or above {} (the attested scans have some or are incomplete)", req.fail_on)
            } else {
                "a scan attestation over this version by a trusted key".to_owned()
            });
        }
    }
    if let Some(req) = &policy.bom {
        let ok = keys(&req.trusted_keys).into_iter().any(|k| {
            let trust = Trust::Key(k);
            parsed.iter().any(|b| {
                palisade_sign::attestation::verify(b, &trust, BOM_PREDICATE_TYPE, Some(&version.digest)).is_ok_and(
                    |(st, _)| {
                        st.predicate.get("bomFormat").and_then(|f| f.as_str()) == Some("CycloneDX")
                            && st.predicate.get("specVersion").and_then(|v| v.as_str()).is_some()
                    },
                )
            })
        });
        if !ok {
            out.push("a CycloneDX AI-BOM attestation over this version by a trusted key".to_owned());
        }
    }
    if policy.separation_of_duties && version.created_by == approver {
        out.push(format!(
            "an approver other than the publisher ({approver} pushed this version)"
        ));
    }
    out
}
