#!/usr/bin/env python3
"""Builds the OpenSSF Model Signing interop vectors in this directory.

Run from the repository root, with `model-signing` (1.1.1, from PyPI) and `pyopenssl` in a
throw-away virtualenv and a built `palisade` binary:

    python3 -m venv /tmp/msvenv && /tmp/msvenv/bin/pip install model-signing==1.1.1 pyopenssl
    cargo build -p palisade
    /tmp/msvenv/bin/python crates/palisade-sign/tests/interop/make_vectors.py target/debug/palisade

It writes:
  model/             a small model whose names exercise the reference's path ordering
  keys/              P-256 and P-384 key pairs, another key, a CA and a code-signing leaf,
                     a stand-in "Fulcio" CA and a keyless leaf certificate
  ref/*.sig          signatures made by the reference implementation
  palisade/*.sig     signatures made by palisade, each verified here by the reference
  keyless.sig        a keyless-shaped bundle (Fulcio-style certificate, DSSE, a Rekor entry
                     with its signed entry timestamp) built with `cryptography`; its trust
                     material is keys/trusted_root.json (stand-in Fulcio root and Rekor key)
  vectors.json       what each signature is, and the model's root digests

The Rust test (tests/interop.rs) checks, without Python: palisade verifies every ref/
signature; palisade's own signatures are byte-identical to palisade/*.sig (RFC 6979
signatures are deterministic), which the reference accepted; and every tamper case fails.
"""

import base64
import datetime
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

import model_signing

HERE = pathlib.Path(__file__).resolve().parent
PALISADE = pathlib.Path(sys.argv[1]).resolve()
MODEL = HERE / "model"
KEYS = HERE / "keys"


def write_model():
    shutil.rmtree(MODEL, ignore_errors=True)
    files = {
        "a.txt": b"a text file\n",
        "a/b.bin": bytes(range(256)) * 3,  # 768 bytes: several shards of 100
        "a/a.b/c": b"nested\n",
        "a-b": b"dash\n",
        "B": b"capital\n",
        "\u00e9t\u00e9.json": b'{"summer": true}\n',
        "empty": b"",
        "config.json": b'{"model_type": "tiny", "architectures": ["TinyModel"]}\n',
        ".gitignore": b"*.tmp\n",  # ignored by default on both sides
    }
    for name, data in files.items():
        p = MODEL / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def cert(subject, issuer, public_key, issuer_key, ca, extra=()):
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write_keys():
    shutil.rmtree(KEYS, ignore_errors=True)
    KEYS.mkdir()
    for name, curve in [("p256", ec.SECP256R1()), ("p384", ec.SECP384R1()), ("other", ec.SECP256R1())]:
        k = ec.generate_private_key(curve)
        (KEYS / f"{name}.key").write_bytes(pem_private(k))
        (KEYS / f"{name}.pub").write_bytes(pem_public(k))
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = cert("Palisade Test CA", "Palisade Test CA", ca_key.public_key(), ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("model publisher", "Palisade Test CA", leaf_key.public_key(), ca_key, False)
    (KEYS / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (KEYS / "leaf.key").write_bytes(pem_private(leaf_key))
    (KEYS / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = cert("Another CA", "Another CA", other_ca_key.public_key(), other_ca_key, True)
    (KEYS / "other-ca.pem").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    # Keyless: a stand-in Fulcio root and a short-lived leaf naming an e-mail identity and
    # the OIDC issuer in Fulcio's v2 extension (1.3.6.1.4.1.57264.1.8, DER UTF8String).
    fulcio_key = ec.generate_private_key(ec.SECP384R1())
    fulcio = cert("sigstore", "sigstore", fulcio_key.public_key(), fulcio_key, True)
    kl_key = ec.generate_private_key(ec.SECP256R1())
    issuer = b"https://accounts.example.com"
    kl = cert(
        "keyless signer",
        "sigstore",
        kl_key.public_key(),
        fulcio_key,
        False,
        extra=[
            x509.SubjectAlternativeName([x509.RFC822Name("signer@example.com")]),
            x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), b"\x0c" + bytes([len(issuer)]) + issuer),
        ],
    )
    (KEYS / "fulcio-root.pem").write_bytes(fulcio.public_bytes(serialization.Encoding.PEM))
    # A stand-in Rekor log key, and a trusted_root.json (sigstore protobuf-specs
    # TrustedRoot) naming the stand-in Fulcio root and log, plus an Ed25519 log that
    # palisade must skip with a warning.
    rekor_key = ec.generate_private_key(ec.SECP256R1())
    rekor_der = rekor_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    from cryptography.hazmat.primitives.asymmetric import ed25519
    ed_der = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = lambda b: base64.b64encode(b).decode()
    trusted_root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
             "publicKey": {"rawBytes": b64(rekor_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2026-01-01T00:00:00Z"}},
             "logId": {"keyId": b64(hashlib.sha256(rekor_der).digest())}},
            {"baseUrl": "https://log2.rekor.example", "hashAlgorithm": "SHA2_256",
             "publicKey": {"rawBytes": b64(ed_der), "keyDetails": "PKIX_ED25519", "validFor": {"start": "2026-01-01T00:00:00Z"}},
             "logId": {"keyId": b64(hashlib.sha256(ed_der).digest())}},
        ],
        "certificateAuthorities": [
            {"subject": {"organization": "example", "commonName": "sigstore"}, "uri": "https://fulcio.example",
             "certChain": {"certificates": [{"rawBytes": b64(fulcio.public_bytes(serialization.Encoding.DER))}]},
             "validFor": {"start": "2026-01-01T00:00:00Z"}},
        ],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
    (KEYS / "trusted_root.json").write_text(json.dumps(trusted_root, indent=2) + "\n")
    return kl_key, kl, rekor_key, rekor_der


def ref_sign(kind, key, out, hashing):
    cfg = model_signing.signing.Config()
    if kind == "key":
        cfg = cfg.use_elliptic_key_signer(private_key=key)
    else:
        cfg = cfg.use_certificate_signer(private_key=KEYS / "leaf.key", signing_certificate=KEYS / "leaf.pem", certificate_chain=[KEYS / "ca.pem"])
    cfg.set_hashing_config(hashing).sign(MODEL, out)


def ref_verify(kind, sig):
    cfg = model_signing.verifying.Config()
    if kind == "key":
        cfg = cfg.use_elliptic_key_verifier(public_key=KEYS / "p256.pub")
    else:
        cfg = cfg.use_certificate_verifier(certificate_chain=[KEYS / "ca.pem"])
    cfg.verify(MODEL, sig)  # raises on failure; the hashing config is taken from the signature


def main():
    write_model()
    kl_key, kl_cert, rekor_key, rekor_der = write_keys()
    for d in ["ref", "palisade"]:
        shutil.rmtree(HERE / d, ignore_errors=True)
        (HERE / d).mkdir()
    H = model_signing.hashing.Config
    vectors = []
    cases = [
        ("files-p256", "key", KEYS / "p256.key", H(), []),
        ("files-p384", "key", KEYS / "p384.key", H(), []),
        ("shards-p256", "key", KEYS / "p256.key", H().use_shard_serialization(shard_size=100), ["--shard-size", "100"]),
        ("blake3-p256", "key", KEYS / "p256.key", H().use_file_serialization(hashing_algorithm="blake3"), ["--hash", "blake3"]),
        ("cert", "certificate", None, H(), []),
    ]
    for name, kind, key, hashing, pal_args in cases:
        ref_sign(kind, key, HERE / "ref" / f"{name}.sig", hashing)
        out = HERE / "palisade" / f"{name}.sig"
        cmd = [str(PALISADE), "sign", str(MODEL), "--output", str(out), "-q", *pal_args]
        if kind == "key":
            cmd += ["--key", str(key)]
        else:
            cmd += ["--key", str(KEYS / "leaf.key"), "--certificate", str(KEYS / "leaf.pem"), "--chain", str(KEYS / "ca.pem")]
        subprocess.run(cmd, check=True)
        if kind == "key" and name != "files-p384":
            ref_verify(kind, out)
        elif kind == "certificate":
            ref_verify(kind, out)
        else:
            model_signing.verifying.Config().use_elliptic_key_verifier(public_key=KEYS / "p384.pub").verify(MODEL, out)
        vectors.append({"name": name, "mode": kind, "palisade_args": pal_args, "reference_verified_palisade": True})

    # Keyless-shaped bundle: DSSE over the reference's own statement for this model.
    ref_bundle = json.loads((HERE / "ref" / "files-p256.sig").read_text())
    payload = base64.b64decode(ref_bundle["dsseEnvelope"]["payload"])
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(payload), payload)
    sig = kl_key.sign(pae, ec.ECDSA(hashes.SHA256()))
    # A Rekor "dsse" v0.0.1 entry for this envelope and the log's signed entry timestamp:
    # ECDSA over the canonical JSON of body, integratedTime, logID (hex) and logIndex.
    cert_pem = kl_cert.public_bytes(serialization.Encoding.PEM)
    envelope_sig = base64.b64encode(sig).decode()
    entry_body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": envelope_sig, "verifier": base64.b64encode(cert_pem).decode()}],
        },
    }
    body_b64 = base64.b64encode(json.dumps(entry_body, sort_keys=True, separators=(",", ":")).encode()).decode()
    log_id = hashlib.sha256(rekor_der).digest()
    integrated = 1790000000  # 2026-09-21, inside the certificate's validity
    promise = {"body": body_b64, "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 4242}
    set_sig = rekor_key.sign(json.dumps(promise, sort_keys=True, separators=(",", ":")).encode(), ec.ECDSA(hashes.SHA256()))
    tlog_entry = {
        "logIndex": "4242",
        "logId": {"keyId": base64.b64encode(log_id).decode()},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
        "integratedTime": str(integrated),
        "inclusionPromise": {"signedEntryTimestamp": base64.b64encode(set_sig).decode()},
        "canonicalizedBody": body_b64,
    }
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(kl_cert.public_bytes(serialization.Encoding.DER)).decode()},
            "tlogEntries": [tlog_entry],
        },
        "dsseEnvelope": {
            "payload": ref_bundle["dsseEnvelope"]["payload"],
            "payloadType": ptype,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }
    (HERE / "keyless.sig").write_text(json.dumps(bundle, indent=2) + "\n")

    statement = json.loads(payload)
    (HERE / "vectors.json").write_text(
        json.dumps(
            {
                "generator": f"model-signing {model_signing.__version__}",
                "root_digest_files_sha256": statement["subject"][0]["digest"]["sha256"],
                "resource_order": [r["name"] for r in statement["predicate"]["resources"]],
                "keyless": {"identity": "signer@example.com", "issuer": "https://accounts.example.com"},
                "vectors": vectors,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print("wrote", len(vectors), "vector pairs and keyless.sig")


if __name__ == "__main__":
    main()
