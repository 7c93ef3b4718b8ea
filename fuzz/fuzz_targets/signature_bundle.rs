//! What a verifier parses from an untrusted signature: the bundle JSON, the statement and
//! manifest inside it, certificates (DER and PEM) and PEM keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sign::bundle::Bundle;
use palisade_sign::cert::Cert;
use palisade_sign::model::{self, Trust};
use palisade_sign::{SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::from_json(data) {
        for c in b
            .verification_material
            .x509_certificate_chain
            .iter()
            .flat_map(|c| &c.certificates)
        {
            if let Ok(der) = c.der() {
                let _ = Cert::from_der(&der).map(|c| (c.identities(), c.oidc_issuer(), c.public_key()));
            }
        }
        // No key verifies a fuzzed signature; this walks the checks before it.
        let key = SigningKey::generate(palisade_sign::Curve::P256).verifying_key();
        let _ = model::verify_bundle(&b, &Trust::Key(key), model::PREDICATE_TYPE);
    }
    if let Ok(st) = serde_json::from_slice::<palisade_core::attest::Statement>(data) {
        let _ = model::manifest_from_statement(&st);
    }
    let _ = Cert::from_der(data);
    let _ = Cert::from_pem_chain(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SigningKey::from_pem(text);
        let _ = VerifyingKey::from_pem(text);
    }
});
