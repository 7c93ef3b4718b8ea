//! The metadata store: one suite, run on SQLite and on the machine's PostgreSQL
//! (`PALISADE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`; each run
//! works in a fresh schema). A PostgreSQL that cannot be reached fails the test: start it
//! with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_core::merkle;
use palisade_registry::audit::{self, Event, LogSigner};
use palisade_registry::blobs::BlobRecord;
use palisade_registry::crypto::WrappedKey;
use palisade_registry::meta::{Lineage, MetaError, MetaStore, VersionFile};

fn blob(n: u8) -> BlobRecord {
    BlobRecord {
        digest: format!("{:064x}", n),
        size: u64::from(n) * 10,
        file_id: format!("f{n}"),
        key: WrappedKey {
            kek_id: "local:test".into(),
            nonce: "bm9uY2U=".into(),
            ciphertext: format!("c{n}"),
        },
    }
}

fn event(action: &str) -> Event {
    Event {
        seq: 0,
        time: "2026-11-22T05:00:00Z".into(),
        actor: "pk_test".into(),
        action: action.into(),
        target: "model/m".into(),
        outcome: "allowed".into(),
        detail: BTreeMap::new(),
    }
}

async fn suite(store: Arc<MetaStore>) {
    // Registered models.
    store
        .create_model("fraud-detector", "scores card transactions", "alice")
        .await
        .unwrap();
    assert!(matches!(
        store.create_model("fraud-detector", "", "bob").await,
        Err(MetaError::Conflict(_))
    ));
    assert!(matches!(
        store.create_model("../etc", "", "bob").await,
        Err(MetaError::Invalid { .. })
    ));
    assert_eq!(store.get_model("fraud-detector").await.unwrap().created_by, "alice");
    assert!(matches!(store.get_model("nope").await, Err(MetaError::NotFound(_))));

    // Blobs: the first record of a digest wins.
    let b1 = store.put_blob(&blob(1)).await.unwrap();
    let mut dup = blob(1);
    dup.file_id = "other".into();
    assert_eq!(store.put_blob(&dup).await.unwrap(), b1);
    store.put_blob(&blob(2)).await.unwrap();

    // Versions: numbered, content-addressed, immutable; lineage kept.
    let files = vec![VersionFile {
        path: "model.safetensors".into(),
        digest: blob(1).digest,
        size: 10,
    }];
    let lineage = Lineage {
        source_run: Some("run-7".into()),
        code_commit: Some("abc123".into()),
        datasets: vec!["sha256:dd".into()],
    };
    let v1 = store
        .create_version("fraud-detector", "root1", &files, &lineage, "alice")
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert!(matches!(
        store
            .create_version("fraud-detector", "root1", &files, &lineage, "bob")
            .await,
        Err(MetaError::Conflict(_))
    ));
    assert!(matches!(
        store.create_version("nope", "r", &files, &lineage, "bob").await,
        Err(MetaError::NotFound(_))
    ));
    let got = store.get_version("fraud-detector", 1).await.unwrap();
    assert_eq!((got.files, got.lineage), (files.clone(), lineage.clone()));

    // Concurrent pushes get distinct, gap-free numbers (PostgreSQL runs these on eight
    // connections at once: a regression test for two of them taking the same number).
    let mut tasks = Vec::new();
    for k in 0..24 {
        let s = store.clone();
        let files = files.clone();
        tasks.push(tokio::spawn(async move {
            s.create_version(
                "fraud-detector",
                &format!("root-c{k}"),
                &files,
                &Lineage::default(),
                "ci",
            )
            .await
            .unwrap()
            .version
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=25).collect::<Vec<u64>>());
    assert_eq!(
        store.list_versions("fraud-detector").await.unwrap(),
        (1..=25).collect::<Vec<u64>>()
    );

    // Aliases with history.
    store
        .set_alias("fraud-detector", "staging", Some(1), "alice")
        .await
        .unwrap();
    store
        .set_alias("fraud-detector", "staging", Some(3), "bob")
        .await
        .unwrap();
    assert_eq!(store.resolve_alias("fraud-detector", "staging").await.unwrap(), 3);
    assert!(matches!(
        store.set_alias("fraud-detector", "production", Some(99), "bob").await,
        Err(MetaError::NotFound(_))
    ));
    store
        .set_alias("fraud-detector", "staging", None, "carol")
        .await
        .unwrap();
    assert!(store.resolve_alias("fraud-detector", "staging").await.is_err());
    let h: Vec<Option<u64>> = store
        .alias_history("fraud-detector", "staging")
        .await
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(h, [Some(1), Some(3), None]);

    // Tags on the model and on a version.
    store.set_tag("fraud-detector", None, "team", "risk").await.unwrap();
    store
        .set_tag("fraud-detector", Some(1), "team", "overwritten-later")
        .await
        .unwrap();
    store.set_tag("fraud-detector", Some(1), "team", "ml").await.unwrap();
    assert_eq!(
        store
            .tags("fraud-detector", None)
            .await
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("risk")
    );
    assert_eq!(
        store
            .tags("fraud-detector", Some(1))
            .await
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("ml")
    );

    // API keys: secrets are not stored; wrong or revoked secrets authenticate nobody.
    let (p, token) = store.create_api_key("ci-bot", &["publisher".into()]).await.unwrap();
    let auth = palisade_auth::Authenticator::new(Some(store.clone()), None);
    let login = |t: String| {
        let auth = auth.clone();
        async move { auth.authenticate(Some(format!("Bearer {t}").as_bytes())).await }
    };
    assert_eq!(login(token.clone()).await.unwrap(), p);
    let (id, secret) = token.split_once('.').unwrap();
    let wrong = format!("{id}.{}", "0".repeat(secret.len()));
    assert!(matches!(
        login(wrong).await,
        Err(palisade_auth::AuthError::InvalidApiKey)
    ));
    assert!(login("garbage".into()).await.is_err());
    store.revoke_api_key(&p.id).await.unwrap();
    assert!(matches!(
        login(token).await,
        Err(palisade_auth::AuthError::InvalidApiKey)
    ));

    // Audit: concurrent appends get contiguous sequence numbers; the stored log verifies
    // against a signed checkpoint.
    // Single appends race with batches (the gateway's refusal writer).
    let mut tasks = Vec::new();
    for k in 0..30 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            vec![s.append_event(event(&format!("push-{k}"))).await.unwrap().seq]
        }));
    }
    for b in 0..2 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let batch = (0..5).map(|k| event(&format!("batch-{b}-{k}"))).collect();
            let got = s.append_events(batch).await.unwrap();
            let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
            // A batch is contiguous and in order.
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
    let signer = LogSigner::generate("palisade.test/registry");
    let leaves = store.leaves().await.unwrap();
    let frontier = merkle::Frontier::from_leaves(&leaves);
    let note = signer.checkpoint(frontier.size(), &frontier.root());
    store.save_checkpoint(&note, &frontier).await.unwrap();
    let (size, stored, kept) = store.last_checkpoint().await.unwrap().unwrap();
    assert_eq!(size, 40);
    assert_eq!(kept, Some(frontier), "the frontier round-trips through the store");
    let events = store.events(0, 40).await.unwrap();
    audit::verify_log(&events, &stored, &signer.verifier()).unwrap();
}

#[tokio::test]
async fn metadata_suite_on_sqlite() {
    let d = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", d.path().join("registry.db").display());
    let store = Arc::new(MetaStore::connect(&url).await.unwrap());
    suite(store).await;
    // Reopening applies no migration twice and keeps the data.
    let again = MetaStore::connect(&url).await.unwrap();
    assert_eq!(again.list_models().await.unwrap().len(), 1);
}

#[tokio::test]
async fn metadata_suite_on_postgres() {
    let base =
        std::env::var("PALISADE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {base} is not reachable ({e}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    });
    let schema = format!(
        "palisade_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let store = Arc::new(MetaStore::connect(&url).await.unwrap());
    suite(store).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
