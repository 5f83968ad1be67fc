//! The shared registry: PostgreSQL (`[devices] registry = "postgres://…"`), for several origin
//! nodes. One connection per node, re-opened when the server went away (requests meanwhile get
//! 503 `registry_unavailable`). Concurrency between nodes: registrations and joins of one
//! subject are serialised by a transaction-scoped advisory lock on the subject (so a device
//! limit holds across nodes), other changes by row locks; `jti`s are unique by primary key.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Transaction};

use super::{
    check_actor, check_join, decide_register, to_u64, Actor, Changed, DeviceRecord, DeviceState, DomainRecord,
    Entitlement, Fut, RegisterAction, Registered, Registry, Replay, Row,
};
use crate::license::device::{unix_now, DeviceError};

/// Migrations, in order, by the name recorded once applied (the file name).
const MIGRATIONS: &[(&str, &str)] =
    &[("0001_devices", include_str!("../../../../migrations/postgres/0001_devices.sql"))];

/// Advisory lock id held while migrating (any constant shared by every node).
const MIGRATION_LOCK: i64 = 0x6472_6d2d_6465_7601;

/// The PostgreSQL registry.
pub struct PostgresRegistry {
    config: tokio_postgres::Config,
    client: Mutex<Option<Client>>,
}

fn unavailable(e: tokio_postgres::Error) -> DeviceError {
    DeviceError::Unavailable(e.to_string())
}

/// A unique violation (SQLSTATE 23505) becomes `on_conflict`; anything else is an outage.
fn conflict_or_unavailable(e: tokio_postgres::Error, on_conflict: DeviceError) -> DeviceError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        on_conflict
    } else {
        unavailable(e)
    }
}

impl PostgresRegistry {
    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<PostgresRegistry, DeviceError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|_| DeviceError::Unavailable("registry URL is not a PostgreSQL URL".into()))?;
        config.connect_timeout(Duration::from_secs(3));
        let r = PostgresRegistry { config, client: Mutex::new(None) };
        {
            let mut guard = r.connected().await?;
            let c = guard.as_mut().ok_or_else(|| DeviceError::Unavailable("not connected".into()))?;
            migrate(c).await?;
        }
        Ok(r)
    }

    async fn connected(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, DeviceError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self.config.connect(NoTls).await.map_err(unavailable)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "device registry: PostgreSQL connection ended");
                }
            });
            *guard = Some(client);
        }
        Ok(guard)
    }

    /// Runs `f` in one transaction (committed when it returns `Ok`).
    fn tx<'a, T, F>(&'a self, f: F) -> Fut<'a, T>
    where
        T: Send + 'a,
        F: for<'t> FnOnce(&'t Transaction<'t>) -> Fut<'t, T> + Send + 'a,
    {
        Box::pin(async move {
            let mut guard = self.connected().await?;
            let c = guard.as_mut().ok_or_else(|| DeviceError::Unavailable("not connected".into()))?;
            let tx = c.transaction().await.map_err(unavailable)?;
            let out = f(&tx).await;
            match out {
                Ok(v) => {
                    tx.commit().await.map_err(unavailable)?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        })
    }
}

/// Applies the registry's pending migrations under an advisory lock (nodes starting together
/// run each once). Applied names go to `drm_origin_migrations`, the table the shared key store
/// (`crate::db`) keeps its own in, so one database can hold both stores with one history.
async fn migrate(c: &mut Client) -> Result<(), DeviceError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS drm_origin_migrations (name text PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .or_else(|e| {
        // Another node (or the key store) creating the table at the same moment.
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            Ok(())
        } else {
            Err(unavailable(e))
        }
    })?;
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(unavailable)?;
    let result = async {
        let tx = c.transaction().await.map_err(unavailable)?;
        for (name, sql) in MIGRATIONS {
            let done = tx
                .query_opt("SELECT 1 FROM drm_origin_migrations WHERE name = $1", &[name])
                .await
                .map_err(unavailable)?;
            if done.is_none() {
                tx.batch_execute(sql).await.map_err(unavailable)?;
                tx.execute("INSERT INTO drm_origin_migrations (name) VALUES ($1)", &[name])
                    .await
                    .map_err(unavailable)?;
                tracing::info!(migration = *name, "device registry: migration applied");
            }
        }
        tx.commit().await.map_err(unavailable)
    }
    .await;
    let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}

const DEVICE_COLUMNS: &str = "id, subject, enc, sig, thumb, gen, state, chain, entitlement, entitled_until, created";

fn row(r: &tokio_postgres::Row) -> Result<Row, DeviceError> {
    let g = |e: tokio_postgres::Error| DeviceError::Internal(format!("registry row: {e}"));
    Ok(Row {
        id: r.try_get(0).map_err(g)?,
        subject: r.try_get(1).map_err(g)?,
        enc: r.try_get(2).map_err(g)?,
        sig: r.try_get(3).map_err(g)?,
        thumb: r.try_get(4).map_err(g)?,
        gen: r.try_get(5).map_err(g)?,
        state: r.try_get(6).map_err(g)?,
        chain: r.try_get(7).map_err(g)?,
        entitlement: r.try_get(8).map_err(g)?,
        entitled_until: r.try_get(9).map_err(g)?,
        created: r.try_get(10).map_err(g)?,
    })
}

async fn get_device(c: &Transaction<'_>, id: &str, lock: bool) -> Result<Option<DeviceRecord>, DeviceError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let r = c.query_opt(&sql, &[&id]).await.map_err(unavailable)?;
    r.as_ref().map(row).transpose()?.map(Row::record).transpose()
}

async fn consume(c: &Transaction<'_>, r: &Replay) -> Result<(), DeviceError> {
    let n = c
        .execute("INSERT INTO seen (jti, expires) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING", &[&r.jti, &r.expires])
        .await
        .map_err(unavailable)?;
    if n == 0 {
        return Err(DeviceError::Replayed);
    }
    Ok(())
}

async fn lock_subject(c: &Transaction<'_>, subject: &str) -> Result<(), DeviceError> {
    c.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&subject]).await.map_err(unavailable)?;
    Ok(())
}

async fn write_device(c: &Transaction<'_>, d: &DeviceRecord) -> Result<(), DeviceError> {
    let r = Row::of(d);
    c.execute(
        "INSERT INTO devices (id, subject, enc, sig, thumb, gen, state, chain, entitlement, entitled_until, created, updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO UPDATE SET enc = excluded.enc, sig = excluded.sig, thumb = excluded.thumb,
             gen = excluded.gen, state = excluded.state, chain = excluded.chain,
             entitlement = excluded.entitlement, entitled_until = excluded.entitled_until, updated = excluded.updated",
        &[
            &r.id,
            &r.subject,
            &r.enc,
            &r.sig,
            &r.thumb,
            &r.gen,
            &r.state,
            &r.chain,
            &r.entitlement,
            &r.entitled_until,
            &r.created,
            &unix_now(),
        ],
    )
    .await
    .map_err(|e| conflict_or_unavailable(e, DeviceError::KeyTaken))?;
    Ok(())
}

async fn get_domain(c: &Transaction<'_>, id: &str, lock: bool) -> Result<Option<DomainRecord>, DeviceError> {
    let sql =
        format!("SELECT subject, key_version FROM domains WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let Some(head) = c.query_opt(&sql, &[&id]).await.map_err(unavailable)? else { return Ok(None) };
    let subject: String = head.try_get(0).map_err(unavailable)?;
    let kv: i64 = head.try_get(1).map_err(unavailable)?;
    let rows =
        c.query("SELECT device FROM members WHERE domain = $1 ORDER BY device", &[&id]).await.map_err(unavailable)?;
    let members = rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
    Ok(Some(DomainRecord { id: id.to_owned(), subject, kv: to_u64(kv), members }))
}

async fn domain_ids_of(c: &Transaction<'_>, device: &str) -> Result<Vec<String>, DeviceError> {
    let rows = c
        .query("SELECT domain FROM members WHERE device = $1 ORDER BY domain", &[&device])
        .await
        .map_err(unavailable)?;
    rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>().map_err(unavailable)
}

async fn remove_member(c: &Transaction<'_>, domain: &str, device: &str) -> Result<DomainRecord, DeviceError> {
    c.execute("UPDATE domains SET key_version = key_version + 1 WHERE id = $1", &[&domain])
        .await
        .map_err(unavailable)?;
    c.execute("DELETE FROM members WHERE domain = $1 AND device = $2", &[&domain, &device])
        .await
        .map_err(unavailable)?;
    let after = get_domain(c, domain, false).await?.ok_or(DeviceError::UnknownDomain)?;
    if after.members.is_empty() {
        c.execute("DELETE FROM domains WHERE id = $1", &[&domain]).await.map_err(unavailable)?;
    }
    Ok(after)
}

async fn leave_all(c: &Transaction<'_>, device: &str) -> Result<Vec<DomainRecord>, DeviceError> {
    let mut out = Vec::new();
    for d in domain_ids_of(c, device).await? {
        out.push(remove_member(c, &d, device).await?);
    }
    Ok(out)
}

impl Registry for PostgresRegistry {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn device(&self, id: &str) -> Fut<'_, Option<DeviceRecord>> {
        let id = id.to_owned();
        self.tx(move |c| Box::pin(async move { get_device(c, &id, false).await }))
    }

    fn register(&self, new: DeviceRecord, replay: Replay, limit: usize) -> Fut<'_, Registered> {
        self.tx(move |c| {
            Box::pin(async move {
                lock_subject(c, &new.subject).await?;
                consume(c, &replay).await?;
                let existing = get_device(c, &new.id, true).await?;
                let taken: i64 = c
                    .query_one("SELECT COUNT(*) FROM devices WHERE thumb = $1 AND id <> $2", &[&new.thumb, &new.id])
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(unavailable)?;
                let active: i64 = c
                    .query_one(
                        "SELECT COUNT(*) FROM devices WHERE subject = $1 AND state = 'active' AND id <> $2",
                        &[&new.subject, &new.id],
                    )
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(unavailable)?;
                let active = usize::try_from(active).unwrap_or(usize::MAX);
                let action = decide_register(existing.as_ref(), &new, taken > 0, active, limit)?;
                let (device, existing) = match (action, existing) {
                    (RegisterAction::Existing, Some(mut e)) => {
                        e.entitlement = new.entitlement;
                        write_device(c, &e).await?;
                        (e, true)
                    }
                    (RegisterAction::Replace { gen }, Some(e)) => {
                        let d = DeviceRecord { gen, state: DeviceState::Active, created: e.created, ..new };
                        write_device(c, &d).await?;
                        (d, false)
                    }
                    _ => {
                        let d = DeviceRecord { gen: 1, state: DeviceState::Active, ..new };
                        write_device(c, &d).await?;
                        (d, false)
                    }
                };
                Ok(Registered { device, existing })
            })
        })
    }

    fn refresh(&self, id: &str, gen: u64, ent: Entitlement, replay: Replay) -> Fut<'_, DeviceRecord> {
        let id = id.to_owned();
        self.tx(move |c| {
            Box::pin(async move {
                consume(c, &replay).await?;
                let mut d = get_device(c, &id, true).await?.ok_or(DeviceError::UnknownDevice)?;
                check_actor(&d, &Actor::Device { gen, subject: None })?;
                if d.entitlement != ent || d.entitlement.until != ent.until {
                    d.entitlement = ent;
                    write_device(c, &d).await?;
                }
                Ok(d)
            })
        })
    }

    fn reset(&self, id: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, Changed> {
        let id = id.to_owned();
        self.tx(move |c| {
            Box::pin(async move {
                if let Some(r) = &replay {
                    consume(c, r).await?;
                }
                let mut d = get_device(c, &id, true).await?.ok_or(DeviceError::UnknownDevice)?;
                check_actor(&d, &actor)?;
                d.state = DeviceState::Reset;
                write_device(c, &d).await?;
                let domains = leave_all(c, &id).await?;
                Ok(Changed { device: d, domains })
            })
        })
    }

    fn revoke(&self, id: &str, subject: &str) -> Fut<'_, Changed> {
        let (id, subject) = (id.to_owned(), subject.to_owned());
        self.tx(move |c| {
            Box::pin(async move {
                let mut d = get_device(c, &id, true).await?.ok_or(DeviceError::UnknownDevice)?;
                if d.subject != subject {
                    return Err(DeviceError::UnknownDevice);
                }
                d.state = DeviceState::Revoked;
                write_device(c, &d).await?;
                let domains = leave_all(c, &id).await?;
                Ok(Changed { device: d, domains })
            })
        })
    }

    fn join(
        &self,
        id: &str,
        gen: u64,
        subject: &str,
        domain: Option<String>,
        new_id: String,
        max_members: usize,
        replay: Replay,
    ) -> Fut<'_, DomainRecord> {
        let (id, subject) = (id.to_owned(), subject.to_owned());
        self.tx(move |c| {
            Box::pin(async move {
                lock_subject(c, &subject).await?;
                consume(c, &replay).await?;
                let d = get_device(c, &id, true).await?.ok_or(DeviceError::UnknownDevice)?;
                check_actor(&d, &Actor::Device { gen, subject: Some(subject.clone()) })?;
                let domain_id = match domain {
                    None => {
                        c.execute(
                            "INSERT INTO domains (id, subject, key_version, created) VALUES ($1, $2, 1, $3)",
                            &[&new_id, &subject, &unix_now()],
                        )
                        .await
                        .map_err(unavailable)?;
                        new_id
                    }
                    Some(did) => did,
                };
                let current = get_domain(c, &domain_id, true).await?.ok_or(DeviceError::UnknownDomain)?;
                if check_join(Some(&current), &subject, &id, max_members)? {
                    c.execute(
                        "INSERT INTO members (domain, device, joined) VALUES ($1, $2, $3)",
                        &[&domain_id, &id, &unix_now()],
                    )
                    .await
                    .map_err(unavailable)?;
                }
                get_domain(c, &domain_id, false).await?.ok_or(DeviceError::UnknownDomain)
            })
        })
    }

    fn leave(&self, id: &str, domain: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, DomainRecord> {
        let (id, domain) = (id.to_owned(), domain.to_owned());
        self.tx(move |c| {
            Box::pin(async move {
                if let Some(r) = &replay {
                    consume(c, r).await?;
                }
                let d = get_device(c, &id, true).await?.ok_or(DeviceError::UnknownDevice)?;
                check_actor(&d, &actor)?;
                let current = get_domain(c, &domain, true).await?.ok_or(DeviceError::UnknownDomain)?;
                if current.subject != d.subject {
                    return Err(DeviceError::UnknownDomain);
                }
                if !current.members.contains(&id) {
                    return Err(DeviceError::WrongDomain);
                }
                remove_member(c, &domain, &id).await
            })
        })
    }

    fn active_devices(&self) -> Fut<'_, Vec<DeviceRecord>> {
        self.tx(|c| {
            Box::pin(async move {
                let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE state = 'active' ORDER BY id");
                let rows = c.query(&sql, &[]).await.map_err(unavailable)?;
                rows.iter().map(|r| row(r).and_then(Row::record)).collect()
            })
        })
    }

    fn domains(&self) -> Fut<'_, Vec<DomainRecord>> {
        self.tx(|c| {
            Box::pin(async move {
                let rows = c.query("SELECT id FROM domains ORDER BY id", &[]).await.map_err(unavailable)?;
                let mut out = Vec::new();
                for r in rows {
                    let id: String = r.try_get(0).map_err(unavailable)?;
                    if let Some(d) = get_domain(c, &id, false).await? {
                        out.push(d);
                    }
                }
                Ok(out)
            })
        })
    }

    fn domains_of(&self, id: &str) -> Fut<'_, Vec<DomainRecord>> {
        let id = id.to_owned();
        self.tx(move |c| {
            Box::pin(async move {
                let mut out = Vec::new();
                for d in domain_ids_of(c, &id).await? {
                    if let Some(d) = get_domain(c, &d, false).await? {
                        out.push(d);
                    }
                }
                Ok(out)
            })
        })
    }

    fn purge_seen(&self, now: i64) -> Fut<'_, u64> {
        self.tx(move |c| {
            Box::pin(
                async move { c.execute("DELETE FROM seen WHERE expires < $1", &[&now]).await.map_err(unavailable) },
            )
        })
    }
}
