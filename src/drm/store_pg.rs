//! The shared key store: auto keys in PostgreSQL (`[keystore] backend = "postgres"`), for several
//! origin nodes behind one CDN. Every node must encrypt an asset under the same key, so a label's
//! key is created by whichever node asks first: `INSERT … ON CONFLICT DO NOTHING`, atomic on its
//! own, then `SELECT` (a node that lost the race waits for the winner's commit in its INSERT, and
//! its SELECT, a later snapshot, reads the winner's row). Rows are never updated, so a key once read is cached for the life
//! of the process: while the database is down, already-keyed assets keep being served and only
//! new keys are refused ([`StoreError::Unavailable`], a 503).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::{KeyStore, Mode, StoreError};
use super::ContentKey;
use crate::crypto::{Key, KeyId};
use crate::db::{DbError, Pg};

/// `[keystore]` for the PostgreSQL backend. Debug shows no URL (it may hold a password).
#[derive(Clone)]
pub struct PgSettings {
    /// libpq URL or key-value string.
    pub url: String,
    /// Bound on each database call, connecting included.
    pub timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// Keys in PostgreSQL, cached in memory once read.
pub struct PgKeyStore {
    pg: Pg,
    url: String,
    cache: Mutex<BTreeMap<String, Arc<ContentKey>>>,
}

impl std::fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeyStore").field("database", &self.pg.target()).finish_non_exhaustive()
    }
}

fn unavailable(e: DbError) -> StoreError {
    StoreError::Unavailable(format!("postgres {e}"))
}

type Row = (String, Vec<u8>, Vec<u8>);

impl PgKeyStore {
    /// Starts the connection (lazily: the database may be down when a node starts).
    pub fn open(settings: PgSettings) -> Result<PgKeyStore, StoreError> {
        let pg = Pg::open(&settings.url, settings.timeout).map_err(unavailable)?;
        Ok(PgKeyStore { pg, url: settings.url, cache: Mutex::default() })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<ContentKey>>> {
        match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    fn to_key(&self, (label, kid, key): Row) -> Result<Arc<ContentKey>, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt {
            path: self.pg.target().to_owned(),
            reason: format!("label {label}: bad {what}"),
        };
        let kid: [u8; 16] = kid.as_slice().try_into().map_err(|_| corrupt("kid"))?;
        let key: [u8; 16] = key.as_slice().try_into().map_err(|_| corrupt("key"))?;
        let ck = Arc::new(ContentKey { name: label.clone(), kid: KeyId(kid), key: Key::new(key) });
        self.cache().entry(label).or_insert(ck.clone());
        Ok(ck)
    }

    /// Inserts `(label, kid, key)` unless the label exists, and returns the label's row.
    fn insert_or_get(
        &self,
        label: &str,
        kid: [u8; 16],
        key: [u8; 16],
        origin: &'static str,
    ) -> Result<Row, StoreError> {
        let label = label.to_owned();
        // Two autocommit statements, no explicit transaction: the connection is shared by
        // concurrent calls, whose BEGIN…COMMIT blocks would interleave on it (one call's error
        // then aborted another's transaction). The INSERT is atomic on its own (one statement,
        // one transaction): of two nodes racing on a label, one row wins; the SELECT, a new
        // snapshot taken after the INSERT returned, reads the winner.
        self.pg
            .call(move |c| async move {
                c.execute(
                    "INSERT INTO drm_content_keys (label, kid, key, origin) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (label) DO NOTHING",
                    &[&label, &kid.as_slice(), &key.as_slice(), &origin],
                )
                .await?;
                let row =
                    c.query_one("SELECT label, kid, key FROM drm_content_keys WHERE label = $1", &[&label]).await?;
                Ok::<Row, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
            })
            .map_err(unavailable)
    }

    fn select(&self, sql: &'static str, arg: Vec<u8>, text: Option<String>) -> Result<Vec<Row>, StoreError> {
        self.pg
            .call(move |c| async move {
                let rows = match &text {
                    Some(t) => c.query(sql, &[t]).await?,
                    None => c.query(sql, &[&arg.as_slice()]).await?,
                };
                rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
            })
            .map_err(unavailable)
    }
}

fn random16() -> Result<[u8; 16], StoreError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(b)
}

impl KeyStore for PgKeyStore {
    fn get_or_create(&self, label: &str) -> Result<Arc<ContentKey>, StoreError> {
        if let Some(k) = self.cache().get(label) {
            return Ok(k.clone());
        }
        let mut kid = random16()?;
        kid[6] = (kid[6] & 0x0f) | 0x40;
        kid[8] = (kid[8] & 0x3f) | 0x80;
        let row = self.insert_or_get(label, kid, random16()?, "created")?;
        let created = row.1.as_slice() == kid.as_slice();
        let ck = self.to_key(row)?;
        if created {
            tracing::info!(label, kid = %ck.kid, "content key created in the shared store");
        }
        Ok(ck)
    }

    fn peek(&self, label: &str) -> Option<Arc<ContentKey>> {
        if let Some(k) = self.cache().get(label) {
            return Some(k.clone());
        }
        let rows = self
            .select("SELECT label, kid, key FROM drm_content_keys WHERE label = $1", Vec::new(), Some(label.to_owned()))
            .ok()?;
        rows.into_iter().next().and_then(|r| self.to_key(r).ok())
    }

    fn import(&self, label: &str, kid: KeyId, key: Key) -> Result<(), StoreError> {
        let row = self.insert_or_get(label, kid.0, *key.bytes(), "imported")?;
        if row.1.as_slice() == kid.0.as_slice() && row.2.as_slice() == key.bytes().as_slice() {
            self.to_key(row)?;
            return Ok(());
        }
        Err(StoreError::Conflict(label.to_owned()))
    }

    fn all(&self) -> Vec<(String, Arc<ContentKey>)> {
        if let Ok(rows) = self.select("SELECT label, kid, key FROM drm_content_keys ORDER BY label", Vec::new(), None) {
            for r in rows {
                let _ = self.to_key(r);
            }
        }
        self.cache().iter().map(|(l, k)| (l.clone(), k.clone())).collect()
    }

    fn find_kid(&self, kid: &KeyId) -> Option<(String, Arc<ContentKey>)> {
        if let Some((l, k)) = self.cache().iter().find(|(_, k)| k.kid == *kid) {
            return Some((l.clone(), k.clone()));
        }
        let rows =
            self.select("SELECT label, kid, key FROM drm_content_keys WHERE kid = $1", kid.0.to_vec(), None).ok()?;
        let row = rows.into_iter().next()?;
        let label = row.0.clone();
        self.to_key(row).ok().map(|k| (label, k))
    }

    fn same_source(&self, mode: &Mode) -> bool {
        matches!(mode, Mode::Postgres(p) if p.url == self.url)
    }
}
