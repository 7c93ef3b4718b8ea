//! OpenSSF Model Signing v1.0: a model manifest as an in-toto statement (predicate type
//! `https://model_signing/signature/v1.0`), signed as DSSE inside a Sigstore bundle, and
//! its verification against a model on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use palisade_core::attest::{self, AttestError, DsseVerifier, ResourceDescriptor, Statement};
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, BundleError, CertificateChain, PublicKeyIdentifier, RawBytes, VerificationMaterial};
use crate::cert::{self, Cert, CertError};
use crate::keys::{KeyError, SigningKey, VerifyingKey};
use crate::serialize::{self, HashConfig, HashError, Manifest, Resource, Serialization};
use crate::trust::{self, TrustError, TrustMaterial};
use base64::Engine as _;

pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

#[derive(Serialize, Deserialize)]
struct Predicate {
    serialization: Serialization,
    resources: Vec<PredicateResource>,
}

#[derive(Serialize, Deserialize)]
struct PredicateResource {
    algorithm: String,
    digest: String,
    name: String,
}

/// The statement the reference implementation signs for a manifest.
pub fn statement(manifest: &Manifest) -> Statement {
    let predicate = Predicate {
        serialization: manifest.serialization.clone(),
        resources: manifest
            .resources
            .iter()
            .map(|r| PredicateResource {
                algorithm: r.algorithm.clone(),
                digest: hex::encode(&r.digest),
                name: r.name.clone(),
            })
            .collect(),
    };
    Statement::new(
        ResourceDescriptor::sha256(manifest.model_name.clone(), manifest.root_digest_hex()),
        PREDICATE_TYPE,
        serde_json::to_value(predicate).unwrap_or_default(),
    )
}

/// Reads the manifest a verified statement describes, checking that its subject digest
/// is the digest of its resources.
pub fn manifest_from_statement(st: &Statement) -> Result<Manifest, VerifyError> {
    let [subject] = st.subject.as_slice() else {
        return Err(VerifyError::Payload(format!(
            "expected one subject, found {}",
            st.subject.len()
        )));
    };
    let expected = subject
        .digest
        .get("sha256")
        .ok_or_else(|| VerifyError::Payload("subject has no sha256 digest".into()))?;
    let predicate: Predicate =
        serde_json::from_value(st.predicate.clone()).map_err(|e| VerifyError::Payload(e.to_string()))?;
    let mut resources = Vec::with_capacity(predicate.resources.len());
    for r in predicate.resources {
        let digest =
            hex::decode(&r.digest).map_err(|_| VerifyError::Payload(format!("digest of {:?} is not hex", r.name)))?;
        resources.push(Resource {
            name: r.name,
            algorithm: r.algorithm,
            digest,
        });
    }
    let computed = hex::encode(serialize::root_digest(&resources));
    if !computed.eq_ignore_ascii_case(expected) {
        return Err(VerifyError::Inconsistent {
            subject: expected.clone(),
            computed,
        });
    }
    Ok(Manifest {
        model_name: subject.name.clone(),
        serialization: predicate.serialization,
        resources,
    })
}

/// Who may have signed.
pub enum Trust {
    /// A public key (`--key`).
    Key(VerifyingKey),
    /// A signing certificate in the bundle that must chain to one of these anchors.
    Certificates(Vec<Cert>),
    /// A Fulcio certificate that must chain to the trusted certificate authorities and name
    /// this identity and OIDC issuer. Verified offline: when the trust material has Rekor
    /// keys, a transparency-log entry whose signed entry timestamp verifies is required and
    /// gives the signing time; without them the certificate's issue time is used.
    Keyless {
        trust: TrustMaterial,
        identity: String,
        issuer: String,
    },
}

/// What to sign with: a key alone, or a key and its certificate chain.
pub struct Signer {
    pub key: SigningKey,
    /// Signing certificate first, then intermediates (DER).
    pub certificates: Vec<Vec<u8>>,
}

impl Signer {
    /// The verification material this signer puts in its bundles.
    pub(crate) fn material(&self) -> Result<VerificationMaterial, KeyError> {
        if self.certificates.is_empty() {
            Ok(VerificationMaterial {
                public_key: Some(PublicKeyIdentifier {
                    hint: Some(self.key.verifying_key().hint()?),
                }),
                ..Default::default()
            })
        } else {
            Ok(VerificationMaterial {
                x509_certificate_chain: Some(CertificateChain {
                    certificates: self.certificates.iter().map(|d| RawBytes::from_der(d)).collect(),
                }),
                ..Default::default()
            })
        }
    }
}

/// Signs a manifest into a bundle.
pub fn sign_manifest(manifest: &Manifest, signer: &Signer) -> Result<Bundle, SignError> {
    if let Some(leaf) = signer.certificates.first() {
        let leaf = Cert::from_der(leaf)?;
        if leaf.public_key()? != signer.key.verifying_key() {
            return Err(SignError::CertificateKey);
        }
    }
    let envelope = attest::sign_statement(&statement(manifest), &signer.key)?;
    Ok(Bundle::new(signer.material()?, envelope))
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Attest(#[from] AttestError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("the signing certificate's public key is not the private key's")]
    CertificateKey,
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// One way the model on disk differs from what was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    Changed {
        name: String,
        expected: String,
        found: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    /// On disk, not in the signature.
    Added(String),
    /// In the signature, not on disk.
    Removed(String),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Changed { name, expected, found } => {
                write!(f, "changed: {name} (signed {expected}, found {found})")
            }
            Difference::Renamed { from, to } => write!(f, "renamed: {from} -> {to}"),
            Difference::Added(n) => write!(
                f,
                "not signed: {n} (pass --ignore-unsigned-files to accept extra files)"
            ),
            Difference::Removed(n) => write!(f, "missing: {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the signature was made with another key (bundle key hint {bundle}, given key {given})")]
    KeyMismatch { bundle: String, given: String },
    #[error("the bundle has no {0}; it was signed in another mode")]
    Material(&'static str),
    #[error(transparent)]
    Signature(#[from] AttestError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("the certificate's identity {found:?} is not the expected {expected:?}")]
    Identity { expected: String, found: Vec<String> },
    #[error("the certificate's OIDC issuer {found:?} is not the expected {expected:?}")]
    Issuer { expected: String, found: Option<String> },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("malformed model signature: {0}")]
    Payload(String),
    #[error(
        "the signed manifest is inconsistent: its subject digest is {subject} but its resources hash to {computed}"
    )]
    Inconsistent { subject: String, computed: String },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("this signature is for another model ({signed_name:?}): none of its {signed} resources match the {found} found here")]
    OtherModel {
        signed_name: String,
        signed: usize,
        found: usize,
    },
    #[error("the model does not match its signature:\n  {}", list(.0))]
    Mismatch(Vec<Difference>),
}

fn list(d: &[Difference]) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<String> = d.iter().take(SHOWN).map(ToString::to_string).collect();
    if d.len() > SHOWN {
        s.push(format!("… and {} more", d.len() - SHOWN));
    }
    s.join("\n  ")
}

/// Options that are the verifier's, not the signer's.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Extra paths (relative to the model) to leave out, e.g. the signature file itself.
    pub ignore_paths: Vec<String>,
    pub ignore_git_paths: bool,
    /// Accept files on disk that the signature does not name.
    pub ignore_unsigned_files: bool,
    pub threads: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            ignore_paths: Vec::new(),
            ignore_git_paths: true,
            ignore_unsigned_files: false,
            threads: 0,
        }
    }
}

/// A verified model.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    /// How the signer was recognised (key hint or certificate subject).
    pub signer: String,
}

/// Checks a bundle's signature against `trust` and returns the signed statement.
pub fn verify_bundle(bundle: &Bundle, trust: &Trust, predicate_type: &str) -> Result<(Statement, String), VerifyError> {
    let envelope = bundle.envelope()?;
    let material = &bundle.verification_material;
    let (key, signer): (VerifyingKey, String) = match trust {
        Trust::Key(key) => {
            let given = key.hint()?;
            if let Some(hint) = material.public_key.as_ref().and_then(|p| p.hint.as_deref()) {
                if !hint.eq_ignore_ascii_case(&given) {
                    return Err(VerifyError::KeyMismatch {
                        bundle: hint.to_owned(),
                        given,
                    });
                }
            }
            (key.clone(), format!("key {given}"))
        }
        Trust::Certificates(anchors) => {
            let chain = material
                .x509_certificate_chain
                .as_ref()
                .ok_or(VerifyError::Material("x509CertificateChain"))?;
            let certs = chain
                .certificates
                .iter()
                .map(|c| Cert::from_der(&c.der()?).map_err(VerifyError::from))
                .collect::<Result<Vec<_>, _>>()?;
            let (leaf, rest) = certs
                .split_first()
                .ok_or(VerifyError::Material("signing certificate"))?;
            // As the reference verifier: the chain is judged at the leaf's issue time.
            let key = cert::verify_chain(leaf, rest, anchors, leaf.not_before())?;
            (key, format!("certificate {:?}", leaf.subject()))
        }
        Trust::Keyless {
            trust,
            identity,
            issuer,
        } => {
            let raw = match (&material.certificate, &material.x509_certificate_chain) {
                (Some(c), _) => c.der()?,
                (None, Some(chain)) => chain
                    .certificates
                    .first()
                    .ok_or(VerifyError::Material("certificate"))?
                    .der()?,
                (None, None) => return Err(VerifyError::Material("certificate")),
            };
            let leaf = Cert::from_der(&raw)?;
            // Fulcio certificates live minutes: the signing time must come from the
            // transparency log's signed promise when the trust material names a log.
            let (at, logged) = if trust.logs.is_empty() {
                (
                    leaf.not_before(),
                    "transparency log not checked: no log key in the trust material".to_owned(),
                )
            } else {
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(envelope.payload.trim())
                    .map_err(|_| AttestError::Base64("payload"))?;
                let mut last = None;
                let mut found = None;
                for e in &material.tlog_entries {
                    match trust::verify_entry(e, &trust.logs, &payload) {
                        Ok(entry) => {
                            found = Some(entry);
                            break;
                        }
                        Err(err) => last = Some(err),
                    }
                }
                match (found, last) {
                    (Some(entry), _) => (entry.integrated_time, format!("logged at index {}", entry.log_index)),
                    (None, Some(err)) => return Err(err.into()),
                    (None, None) => return Err(VerifyError::Material("transparency-log entry")),
                }
            };
            let key = cert::verify_chain(&leaf, &[], &trust.certificate_authorities, at)?;
            let ids = leaf.identities();
            if !ids.iter().any(|i| i == identity) {
                return Err(VerifyError::Identity {
                    expected: identity.clone(),
                    found: ids,
                });
            }
            let found = leaf.oidc_issuer();
            if found.as_deref() != Some(issuer.as_str()) {
                return Err(VerifyError::Issuer {
                    expected: issuer.clone(),
                    found,
                });
            }
            (key, format!("{identity} ({issuer}; {logged})"))
        }
    };
    let statement = envelope.verify_statement(&key as &dyn DsseVerifier, predicate_type)?;
    Ok((statement, signer))
}

/// Verifies a model on disk against a signature bundle.
pub fn verify_model(
    model: &Path,
    bundle: &Bundle,
    trust: &Trust,
    opts: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Verified, VerifyError> {
    let (statement, signer) = verify_bundle(bundle, trust, PREDICATE_TYPE)?;
    let expected = manifest_from_statement(&statement)?;
    let mut cfg = HashConfig::from_serialization(&expected.serialization)?;
    cfg.ignore_paths.extend(opts.ignore_paths.iter().cloned());
    cfg.ignore_git_paths = opts.ignore_git_paths;
    cfg.threads = opts.threads;
    let only: Option<BTreeSet<String>> = opts.ignore_unsigned_files.then(|| {
        expected
            .resources
            .iter()
            .map(|r| serialize::resource_path(&expected.serialization, &r.name).to_owned())
            .collect()
    });
    // A single-file model's one resource is named "." and has no path to filter by.
    let only = only.filter(|o| !o.contains("."));
    let actual = serialize::hash_model_only(model, &cfg, only.as_ref(), progress)?;
    compare(&expected, &actual)?;
    Ok(Verified {
        manifest: expected,
        signer,
    })
}

fn compare(expected: &Manifest, actual: &Manifest) -> Result<(), VerifyError> {
    let want: BTreeMap<&str, &Resource> = expected.resources.iter().map(|r| (r.name.as_str(), r)).collect();
    let have: BTreeMap<&str, &Resource> = actual.resources.iter().map(|r| (r.name.as_str(), r)).collect();
    let show = |r: &Resource| format!("{}:{}", r.algorithm, hex::encode(&r.digest));
    let mut changed = Vec::new();
    let mut removed: Vec<&Resource> = Vec::new();
    let mut added: Vec<&Resource> = Vec::new();
    let mut matched = 0usize;
    for (name, w) in &want {
        match have.get(name) {
            Some(h) if h.digest == w.digest && h.algorithm == w.algorithm => matched += 1,
            Some(h) => changed.push(Difference::Changed {
                name: name.to_string(),
                expected: show(w),
                found: show(h),
            }),
            None => removed.push(w),
        }
    }
    for (name, h) in &have {
        if !want.contains_key(name) {
            added.push(h);
        }
    }
    if changed.is_empty() && removed.is_empty() && added.is_empty() {
        return Ok(());
    }
    let shared_digest = |r: &Resource| actual.resources.iter().any(|a| a.digest == r.digest);
    if matched == 0 && !want.is_empty() && !expected.resources.iter().any(shared_digest) {
        return Err(VerifyError::OtherModel {
            signed_name: expected.model_name.clone(),
            signed: expected.resources.len(),
            found: actual.resources.len(),
        });
    }
    let mut diffs = changed;
    // A removed and an added file with the same content: a rename.
    let mut renamed_to: BTreeSet<&str> = BTreeSet::new();
    for r in removed {
        match added
            .iter()
            .find(|a| a.digest == r.digest && !renamed_to.contains(a.name.as_str()))
        {
            Some(a) => {
                renamed_to.insert(a.name.as_str());
                diffs.push(Difference::Renamed {
                    from: r.name.clone(),
                    to: a.name.clone(),
                });
            }
            None => diffs.push(Difference::Removed(r.name.clone())),
        }
    }
    diffs.extend(
        added
            .iter()
            .filter(|a| !renamed_to.contains(a.name.as_str()))
            .map(|a| Difference::Added(a.name.clone())),
    );
    Err(VerifyError::Mismatch(diffs))
}
