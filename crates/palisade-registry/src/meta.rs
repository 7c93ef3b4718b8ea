//! Registry metadata in SQLite (the embedded default) or PostgreSQL (scale-out), chosen by
//! URL, through one query layer (sqlx `Any`, `$N` placeholders that both engines accept).
//! Registered models → immutable, content-addressed versions (named by the model's OpenSSF
//! Model Signing root digest) → aliases with history; tags; lineage; blob records; API
//! keys (stored as SHA-256 of a 256-bit random secret); and the audit log's events and
//! checkpoints. Every multi-row change is one transaction.

use std::collections::BTreeMap;

use palisade_core::merkle::{Frontier, Hash};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use palisade_auth::{ApiKeyStore, BoxFuture, Method, Principal, StoredKey};

use crate::audit::Event;
use crate::blobs::BlobRecord;

/// Schema migrations, applied in order and recorded in `palisade_migrations`. The SQL is
/// the common subset of SQLite and PostgreSQL; a later migration that needs dialect
/// differences carries both texts.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "registry v1",
        "CREATE TABLE registered_models (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        file_id TEXT NOT NULL,
        size BIGINT NOT NULL,
        wrapped_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE model_versions (
        model TEXT NOT NULL REFERENCES registered_models(name),
        version BIGINT NOT NULL,
        digest TEXT NOT NULL,
        lineage TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (model, version),
        UNIQUE (model, digest)
    );
    CREATE TABLE version_files (
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        path TEXT NOT NULL,
        digest TEXT NOT NULL REFERENCES blobs(digest),
        size BIGINT NOT NULL,
        PRIMARY KEY (model, version, path)
    );
    CREATE TABLE aliases (
        model TEXT NOT NULL,
        alias TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (model, alias)
    );
    CREATE TABLE alias_history (
        model TEXT NOT NULL,
        alias TEXT NOT NULL,
        seq BIGINT NOT NULL,
        version BIGINT,
        changed_at TEXT NOT NULL,
        changed_by TEXT NOT NULL,
        PRIMARY KEY (model, alias, seq)
    );
    CREATE TABLE tags (
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (model, version, key)
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        secret_sha256 TEXT NOT NULL,
        subject TEXT NOT NULL,
        roles TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE audit_events (
        seq BIGINT PRIMARY KEY,
        event TEXT NOT NULL,
        leaf_hash TEXT NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        size BIGINT PRIMARY KEY,
        note TEXT NOT NULL
    );",
    ),
    (
        2,
        "attestations and promotion gates",
        "CREATE TABLE attestations (
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        bundle TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (model, version, seq)
    );
    CREATE TABLE gates (
        model TEXT NOT NULL,
        alias TEXT NOT NULL,
        policy TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (model, alias)
    );",
    ),
    (
        3,
        "checkpoint frontiers",
        "ALTER TABLE audit_checkpoints ADD COLUMN frontier TEXT",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisteredModel {
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
}

/// Where a version came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lineage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionFile {
    pub path: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelVersion {
    pub model: String,
    pub version: u64,
    /// The model's root digest (OpenSSF Model Signing): what signatures and attestations name.
    pub digest: String,
    pub files: Vec<VersionFile>,
    pub lineage: Lineage,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AliasChange {
    pub version: Option<u64>,
    pub changed_at: String,
    pub changed_by: String,
}

#[derive(Clone)]
pub struct MetaStore {
    pool: AnyPool,
    /// PostgreSQL runs writers concurrently; SQLite has one connection (see `connect`).
    postgres: bool,
}

/// A 64-bit advisory-lock key for a named sequence (`"versions"`, model name…).
fn lock_key(parts: &[&str]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

fn now() -> String {
    palisade_core::time::now_rfc3339()
}

fn valid_name(what: &'static str, s: &str) -> Result<(), MetaError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !s.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(MetaError::Invalid {
            what,
            why: format!("{s:?}: 1-128 of A-Z a-z 0-9 - _ . (not starting with .)"),
        })
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE constraint failed")
                || d.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl MetaStore {
    /// Serialises the writers of one sequence (`MAX(n) + 1` numbering) until `tx` ends.
    /// PostgreSQL takes a transaction-scoped advisory lock: after it, a `READ COMMITTED`
    /// read sees every committed number, so two transactions never pick the same one.
    /// SQLite needs nothing: it has one connection, so transactions never interleave.
    async fn serialize(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, parts: &[&str]) -> Result<(), MetaError> {
        if self.postgres {
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(lock_key(parts))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Connects (`sqlite://PATH` or `postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, MetaError> {
        sqlx::any::install_default_drivers();
        let url = if url.starts_with("sqlite:") && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        // SQLite serialises writers; one connection avoids "database is locked" under load.
        let max = if url.starts_with("sqlite:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(&url).await?;
        let postgres = !url.starts_with("sqlite:");
        let store = MetaStore { pool, postgres };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), MetaError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS palisade_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            .execute(&self.pool)
            .await?;
        for (version, name, sql) in MIGRATIONS {
            let done: Option<AnyRow> = sqlx::query("SELECT version FROM palisade_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&self.pool)
                .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO palisade_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*name)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn create_model(&self, name: &str, description: &str, actor: &str) -> Result<RegisteredModel, MetaError> {
        valid_name("model name", name)?;
        let m = RegisteredModel {
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: now(),
            created_by: actor.to_owned(),
        };
        let r = sqlx::query(
            "INSERT INTO registered_models (name, description, created_at, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(&m.name)
        .bind(&m.description)
        .bind(&m.created_at)
        .bind(&m.created_by)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(m),
            Err(e) if is_unique_violation(&e) => Err(MetaError::Conflict(format!("model {name}"))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_model(&self, name: &str) -> Result<RegisteredModel, MetaError> {
        let row =
            sqlx::query("SELECT name, description, created_at, created_by FROM registered_models WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| MetaError::NotFound(format!("model {name}")))?;
        Ok(RegisteredModel {
            name: row.try_get(0)?,
            description: row.try_get(1)?,
            created_at: row.try_get(2)?,
            created_by: row.try_get(3)?,
        })
    }

    pub async fn list_models(&self) -> Result<Vec<RegisteredModel>, MetaError> {
        let rows = sqlx::query("SELECT name, description, created_at, created_by FROM registered_models ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RegisteredModel {
                    name: row.try_get(0)?,
                    description: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    created_by: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Records a stored blob. When the digest is already recorded (a concurrent or earlier
    /// push), the existing record wins and is returned; the caller removes its own file.
    pub async fn put_blob(&self, rec: &BlobRecord) -> Result<BlobRecord, MetaError> {
        let key = serde_json::to_string(&rec.key).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO blobs (digest, file_id, size, wrapped_key, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&rec.digest)
        .bind(&rec.file_id)
        .bind(i(rec.size))
        .bind(key)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.get_blob(&rec.digest).await
    }

    pub async fn get_blob(&self, digest: &str) -> Result<BlobRecord, MetaError> {
        let row = sqlx::query("SELECT digest, file_id, size, wrapped_key FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| MetaError::NotFound(format!("blob {digest}")))?;
        let key: String = row.try_get(3)?;
        Ok(BlobRecord {
            digest: row.try_get(0)?,
            file_id: row.try_get(1)?,
            size: u(row.try_get(2)?),
            key: serde_json::from_str(&key).map_err(|e| MetaError::Corrupt(e.to_string()))?,
        })
    }

    /// All blob records (for key rotation).
    pub async fn all_blobs(&self) -> Result<Vec<BlobRecord>, MetaError> {
        let rows = sqlx::query("SELECT digest FROM blobs ORDER BY digest")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let d: String = r.try_get(0)?;
            out.push(self.get_blob(&d).await?);
        }
        Ok(out)
    }

    /// Replaces a blob's wrapped data key (rotation); the blob file is untouched.
    pub async fn update_blob_key(&self, rec: &BlobRecord) -> Result<(), MetaError> {
        let key = serde_json::to_string(&rec.key).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE blobs SET wrapped_key = $1 WHERE digest = $2")
            .bind(key)
            .bind(&rec.digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates the next version of `model` in one transaction. Every file's blob must be
    /// recorded already; a version with the same root digest is a conflict (versions are
    /// content-addressed and immutable).
    pub async fn create_version(
        &self,
        model: &str,
        digest: &str,
        files: &[VersionFile],
        lineage: &Lineage,
        actor: &str,
    ) -> Result<ModelVersion, MetaError> {
        self.get_model(model).await?;
        let lineage_json = serde_json::to_string(lineage).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        self.serialize(&mut tx, &["versions", model]).await?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = $1")
            .bind(model)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let created_at = now();
        let r = sqlx::query(
            "INSERT INTO model_versions (model, version, digest, lineage, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(model)
        .bind(next)
        .bind(digest)
        .bind(&lineage_json)
        .bind(&created_at)
        .bind(actor)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            // The number is ours (serialised above), so a unique violation is the digest.
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return match self.version_by_digest(model, digest).await? {
                    Some(existing) => Err(MetaError::Conflict(format!(
                        "{model} version {} with digest {digest}",
                        existing.version
                    ))),
                    None => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        }
        for f in files {
            sqlx::query("INSERT INTO version_files (model, version, path, digest, size) VALUES ($1, $2, $3, $4, $5)")
                .bind(model)
                .bind(next)
                .bind(&f.path)
                .bind(&f.digest)
                .bind(i(f.size))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ModelVersion {
            model: model.to_owned(),
            version: u(next),
            digest: digest.to_owned(),
            files: files.to_vec(),
            lineage: lineage.clone(),
            created_at,
            created_by: actor.to_owned(),
        })
    }

    async fn version_by_digest(&self, model: &str, digest: &str) -> Result<Option<ModelVersion>, MetaError> {
        let row = sqlx::query("SELECT version FROM model_versions WHERE model = $1 AND digest = $2")
            .bind(model)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.get_version(model, u(r.try_get(0)?)).await?)),
            None => Ok(None),
        }
    }

    pub async fn get_version(&self, model: &str, version: u64) -> Result<ModelVersion, MetaError> {
        let row = sqlx::query(
            "SELECT digest, lineage, created_at, created_by FROM model_versions WHERE model = $1 AND version = $2",
        )
        .bind(model)
        .bind(i(version))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| MetaError::NotFound(format!("{model} version {version}")))?;
        let lineage: String = row.try_get(1)?;
        let files =
            sqlx::query("SELECT path, digest, size FROM version_files WHERE model = $1 AND version = $2 ORDER BY path")
                .bind(model)
                .bind(i(version))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(VersionFile {
                        path: r.try_get(0)?,
                        digest: r.try_get(1)?,
                        size: u(r.try_get(2)?),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(ModelVersion {
            model: model.to_owned(),
            version,
            digest: row.try_get(0)?,
            files,
            lineage: serde_json::from_str(&lineage).map_err(|e| MetaError::Corrupt(e.to_string()))?,
            created_at: row.try_get(2)?,
            created_by: row.try_get(3)?,
        })
    }

    pub async fn list_versions(&self, model: &str) -> Result<Vec<u64>, MetaError> {
        self.get_model(model).await?;
        let rows = sqlx::query("SELECT version FROM model_versions WHERE model = $1 ORDER BY version")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(u(r.try_get(0)?))).collect()
    }

    /// Points `alias` at `version` (or removes it with `None`), recording the change.
    pub async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: Option<u64>,
        actor: &str,
    ) -> Result<(), MetaError> {
        valid_name("alias", alias)?;
        if let Some(v) = version {
            self.get_version(model, v).await?;
        }
        let at = now();
        let mut tx = self.pool.begin().await?;
        self.serialize(&mut tx, &["alias", model, alias]).await?;
        sqlx::query("DELETE FROM aliases WHERE model = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        if let Some(v) = version {
            sqlx::query(
                "INSERT INTO aliases (model, alias, version, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(model)
            .bind(alias)
            .bind(i(v))
            .bind(&at)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        }
        let seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM alias_history WHERE model = $1 AND alias = $2")
                .bind(model)
                .bind(alias)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        sqlx::query("INSERT INTO alias_history (model, alias, seq, version, changed_at, changed_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(model)
            .bind(alias)
            .bind(seq)
            .bind(version.map(i))
            .bind(&at)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn resolve_alias(&self, model: &str, alias: &str) -> Result<u64, MetaError> {
        let row = sqlx::query("SELECT version FROM aliases WHERE model = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| MetaError::NotFound(format!("alias {model}@{alias}")))?;
        Ok(u(row.try_get(0)?))
    }

    pub async fn alias_history(&self, model: &str, alias: &str) -> Result<Vec<AliasChange>, MetaError> {
        let rows = sqlx::query(
            "SELECT version, changed_at, changed_by FROM alias_history WHERE model = $1 AND alias = $2 ORDER BY seq",
        )
        .bind(model)
        .bind(alias)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let v: Option<i64> = r.try_get(0)?;
                Ok(AliasChange {
                    version: v.map(u),
                    changed_at: r.try_get(1)?,
                    changed_by: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Sets a tag on a model (`version` None) or a version.
    pub async fn set_tag(&self, model: &str, version: Option<u64>, key: &str, value: &str) -> Result<(), MetaError> {
        valid_name("tag key", key)?;
        let v = i(version.unwrap_or(0));
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tags WHERE model = $1 AND version = $2 AND key = $3")
            .bind(model)
            .bind(v)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO tags (model, version, key, value) VALUES ($1, $2, $3, $4)")
            .bind(model)
            .bind(v)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag; `NotFound` when it was not set.
    pub async fn delete_tag(&self, model: &str, version: Option<u64>, key: &str) -> Result<(), MetaError> {
        let r = sqlx::query("DELETE FROM tags WHERE model = $1 AND version = $2 AND key = $3")
            .bind(model)
            .bind(i(version.unwrap_or(0)))
            .bind(key)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(MetaError::NotFound(format!("tag {key}")));
        }
        Ok(())
    }

    /// A model's aliases and the versions they point at.
    pub async fn aliases(&self, model: &str) -> Result<BTreeMap<String, u64>, MetaError> {
        let rows = sqlx::query("SELECT alias, version FROM aliases WHERE model = $1")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, u(r.try_get(1)?)))).collect()
    }

    pub async fn tags(&self, model: &str, version: Option<u64>) -> Result<BTreeMap<String, String>, MetaError> {
        let rows = sqlx::query("SELECT key, value FROM tags WHERE model = $1 AND version = $2")
            .bind(model)
            .bind(i(version.unwrap_or(0)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Creates an API key; returns the principal and the token `pk_<id>.<secret>`, shown
    /// once. Only the SHA-256 of the secret is stored.
    pub async fn create_api_key(&self, subject: &str, roles: &[String]) -> Result<(Principal, String), MetaError> {
        let (id, digest, token) = palisade_auth::apikey::generate();
        sqlx::query("INSERT INTO api_keys (id, secret_sha256, subject, roles, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(digest)
            .bind(subject)
            .bind(roles.join(","))
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok((
            Principal {
                id,
                subject: subject.to_owned(),
                roles: roles.to_vec(),
                method: Method::ApiKey,
            },
            token,
        ))
    }

    async fn find_api_key(&self, id: &str) -> Result<Option<StoredKey>, MetaError> {
        let row = sqlx::query("SELECT secret_sha256, subject, roles, revoked_at FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let roles: String = row.try_get(2)?;
        let revoked: Option<String> = row.try_get(3)?;
        Ok(Some(StoredKey {
            secret_sha256: row.try_get(0)?,
            subject: row.try_get(1)?,
            roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
            revoked: revoked.is_some(),
        }))
    }

    pub async fn count_api_keys(&self) -> Result<u64, MetaError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(u(n))
    }

    pub async fn revoke_api_key(&self, id: &str) -> Result<(), MetaError> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(MetaError::NotFound(format!("API key {id}")));
        }
        Ok(())
    }

    /// Appends an event (its `seq` is assigned here) and returns it.
    pub async fn append_event(&self, mut event: Event) -> Result<Event, MetaError> {
        let mut tx = self.pool.begin().await?;
        self.serialize(&mut tx, &["audit"]).await?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        event.seq = u(next);
        sqlx::query("INSERT INTO audit_events (seq, event, leaf_hash) VALUES ($1, $2, $3)")
            .bind(next)
            .bind(String::from_utf8_lossy(&event.canonical()).into_owned())
            .bind(hex::encode(event.leaf_hash()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Appends several events in one transaction, in order (their `seq`s are assigned
    /// here).
    pub async fn append_events(&self, events: Vec<Event>) -> Result<Vec<Event>, MetaError> {
        if events.is_empty() {
            return Ok(events);
        }
        let mut tx = self.pool.begin().await?;
        self.serialize(&mut tx, &["audit"]).await?;
        let mut next: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut out = Vec::with_capacity(events.len());
        for mut event in events {
            event.seq = u(next);
            sqlx::query("INSERT INTO audit_events (seq, event, leaf_hash) VALUES ($1, $2, $3)")
                .bind(next)
                .bind(String::from_utf8_lossy(&event.canonical()).into_owned())
                .bind(hex::encode(event.leaf_hash()))
                .execute(&mut *tx)
                .await?;
            next += 1;
            out.push(event);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Events `[from, to)` in order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<Event>, MetaError> {
        let rows = sqlx::query("SELECT event FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq")
            .bind(i(from))
            .bind(i(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(0)?;
                serde_json::from_str(&s).map_err(|e| MetaError::Corrupt(format!("audit event: {e}")))
            })
            .collect()
    }

    /// Every leaf hash, in order (recomputed from the stored events, not trusted from the
    /// stored hash column).
    pub async fn leaves(&self) -> Result<Vec<Hash>, MetaError> {
        Ok(self
            .events(0, u64::MAX >> 1)
            .await?
            .iter()
            .map(Event::leaf_hash)
            .collect())
    }

    /// Stores an attestation or signature bundle (JSON text) for a version.
    pub async fn add_attestation(
        &self,
        model: &str,
        version: u64,
        bundle: &str,
        actor: &str,
    ) -> Result<u64, MetaError> {
        self.get_version(model, version).await?;
        let mut tx = self.pool.begin().await?;
        let v = version.to_string();
        self.serialize(&mut tx, &["attestations", model, &v]).await?;
        let seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM attestations WHERE model = $1 AND version = $2")
                .bind(model)
                .bind(i(version))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        sqlx::query("INSERT INTO attestations (model, version, seq, bundle, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(model)
            .bind(i(version))
            .bind(seq)
            .bind(bundle)
            .bind(now())
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u(seq))
    }

    pub async fn attestations(&self, model: &str, version: u64) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query("SELECT bundle FROM attestations WHERE model = $1 AND version = $2 ORDER BY seq")
            .bind(model)
            .bind(i(version))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Sets the promotion gate of an alias (policy JSON), or removes it with `None`.
    pub async fn set_gate(&self, model: &str, alias: &str, policy: Option<&str>, actor: &str) -> Result<(), MetaError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM gates WHERE model = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        if let Some(p) = policy {
            sqlx::query("INSERT INTO gates (model, alias, policy, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)")
                .bind(model)
                .bind(alias)
                .bind(p)
                .bind(now())
                .bind(actor)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn gate(&self, model: &str, alias: &str) -> Result<Option<String>, MetaError> {
        let row = sqlx::query("SELECT policy FROM gates WHERE model = $1 AND alias = $2")
            .bind(model)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Stores a checkpoint with the tree's frontier, so the next one only reads newer leaves.
    pub async fn save_checkpoint(&self, note: &str, frontier: &Frontier) -> Result<(), MetaError> {
        let nodes: Vec<String> = frontier.nodes().iter().map(hex::encode).collect();
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, note, frontier) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING",
        )
        .bind(i(frontier.size()))
        .bind(note)
        .bind(nodes.join(","))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest checkpoint: size, note and (when it was saved with one) frontier.
    pub async fn last_checkpoint(&self) -> Result<Option<(u64, String, Option<Frontier>)>, MetaError> {
        let row = sqlx::query("SELECT size, note, frontier FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let size = u(row.try_get(0)?);
        let note: String = row.try_get(1)?;
        let frontier: Option<String> = row.try_get(2)?;
        let frontier =
            match frontier {
                None => None,
                Some(text) => {
                    let nodes = text
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|h| hex::decode(h).ok().and_then(|b| <Hash>::try_from(b).ok()))
                        .collect::<Option<Vec<Hash>>>()
                        .ok_or_else(|| MetaError::Corrupt(format!("checkpoint {size}: bad frontier")))?;
                    Some(Frontier::from_parts(size, nodes).ok_or_else(|| {
                        MetaError::Corrupt(format!("checkpoint {size}: frontier does not fit its size"))
                    })?)
                }
            };
        Ok(Some((size, note, frontier)))
    }

    /// The leaf hashes of events `from..to`, recomputed from the stored events (the
    /// stored hash column is not trusted).
    pub async fn leaf_hashes(&self, from: u64, to: u64) -> Result<Vec<Hash>, MetaError> {
        Ok(self.events(from, to).await?.iter().map(Event::leaf_hash).collect())
    }

    /// The number of events in the log.
    pub async fn log_size(&self) -> Result<u64, MetaError> {
        let n: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(u(n))
    }
}

impl ApiKeyStore for MetaStore {
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredKey>, String>> {
        Box::pin(async move { self.find_api_key(id).await.map_err(|e| e.to_string()) })
    }
}
