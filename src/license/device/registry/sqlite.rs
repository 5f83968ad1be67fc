//! The embedded registry: one SQLite file (WAL, `synchronous = FULL`, foreign keys on), opened
//! by the server and by `licenses generate` alike (SQLite serialises writers across processes;
//! a writer waits up to [`BUSY_TIMEOUT`] for another, then the request gets 503). Statements
//! run on the blocking pool, one connection per process.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{
    check_actor, check_join, decide_register, Actor, Changed, DeviceRecord, DeviceState, DomainRecord, Entitlement,
    Fut, RegisterAction, Registered, Registry, Replay, Row,
};
use crate::license::device::{unix_now, DeviceError};

/// How long a write waits for another process's transaction before giving up (503).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// Migrations, in order.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../../../migrations/sqlite/0001_devices.sql"))];

/// The SQLite registry.
pub struct SqliteRegistry {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(e: rusqlite::Error) -> DeviceError {
    DeviceError::Unavailable(e.to_string())
}

impl SqliteRegistry {
    /// Opens (creating) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteRegistry, DeviceError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DeviceError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        let mut c = Connection::open(path).map_err(unavailable)?;
        c.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        // WAL: readers never block the writer; FULL: a registration answered 201 survives a
        // power cut, not only a crash.
        c.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
        c.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
        c.pragma_update(None, "foreign_keys", "ON").map_err(unavailable)?;
        migrate(&mut c)?;
        Ok(SqliteRegistry { conn: Arc::new(Mutex::new(c)) })
    }

    fn run<T, F>(&self, f: F) -> Fut<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DeviceError> + Send + 'static,
    {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut c = match conn.lock() {
                    Ok(c) => c,
                    Err(p) => p.into_inner(),
                };
                f(&mut c)
            })
            .await
            .map_err(|e| DeviceError::Unavailable(e.to_string()))?
        })
    }

    fn tx<T, F>(&self, f: F) -> Fut<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DeviceError> + Send + 'static,
    {
        self.run(move |c| {
            // IMMEDIATE: take the write lock first, so the checks and the change see one state.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let out = f(&tx)?;
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
    }
}

fn migrate(c: &mut Connection) -> Result<(), DeviceError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )
    .map_err(unavailable)?;
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> = tx
            .query_row("SELECT version FROM schema_migrations WHERE version = ?1", params![version], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        if done.is_none() {
            tx.execute_batch(sql).map_err(unavailable)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
                params![version, unix_now()],
            )
            .map_err(unavailable)?;
            tracing::info!(version, "device registry: migration applied");
        }
    }
    tx.commit().map_err(unavailable)
}

const DEVICE_COLUMNS: &str = "id, subject, enc, sig, thumb, gen, state, chain, entitlement, entitled_until, created";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        subject: r.get(1)?,
        enc: r.get(2)?,
        sig: r.get(3)?,
        thumb: r.get(4)?,
        gen: r.get(5)?,
        state: r.get(6)?,
        chain: r.get(7)?,
        entitlement: r.get(8)?,
        entitled_until: r.get(9)?,
        created: r.get(10)?,
    })
}

fn get_device(c: &Connection, id: &str) -> Result<Option<DeviceRecord>, DeviceError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1");
    c.query_row(&sql, params![id], row).optional().map_err(unavailable)?.map(Row::record).transpose()
}

fn consume(c: &Connection, r: &Replay) -> Result<(), DeviceError> {
    let n = c
        .execute("INSERT OR IGNORE INTO seen (jti, expires) VALUES (?1, ?2)", params![r.jti, r.expires])
        .map_err(unavailable)?;
    if n == 0 {
        return Err(DeviceError::Replayed);
    }
    Ok(())
}

fn write_device(c: &Connection, d: &DeviceRecord) -> Result<(), DeviceError> {
    let r = Row::of(d);
    c.execute(
        "INSERT INTO devices (id, subject, enc, sig, thumb, gen, state, chain, entitlement, entitled_until, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO UPDATE SET enc = excluded.enc, sig = excluded.sig, thumb = excluded.thumb,
             gen = excluded.gen, state = excluded.state, chain = excluded.chain,
             entitlement = excluded.entitlement, entitled_until = excluded.entitled_until, updated = excluded.updated",
        params![
            r.id,
            r.subject,
            r.enc,
            r.sig,
            r.thumb,
            r.gen,
            r.state,
            r.chain,
            r.entitlement,
            r.entitled_until,
            r.created,
            unix_now()
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

fn get_domain(c: &Connection, id: &str) -> Result<Option<DomainRecord>, DeviceError> {
    let head: Option<(String, i64)> = c
        .query_row("SELECT subject, key_version FROM domains WHERE id = ?1", params![id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(unavailable)?;
    let Some((subject, kv)) = head else { return Ok(None) };
    let mut st = c.prepare("SELECT device FROM members WHERE domain = ?1 ORDER BY device").map_err(unavailable)?;
    let members = st
        .query_map(params![id], |r| r.get::<_, String>(0))
        .map_err(unavailable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    Ok(Some(DomainRecord { id: id.to_owned(), subject, kv: super::to_u64(kv), members }))
}

fn domain_ids_of(c: &Connection, device: &str) -> Result<Vec<String>, DeviceError> {
    let mut st = c.prepare("SELECT domain FROM members WHERE device = ?1 ORDER BY domain").map_err(unavailable)?;
    let ids = st
        .query_map(params![device], |r| r.get::<_, String>(0))
        .map_err(unavailable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    Ok(ids)
}

/// Removes `device` from `domain`: key version + 1, or the domain goes with its last member.
fn remove_member(c: &Connection, domain: &str, device: &str) -> Result<DomainRecord, DeviceError> {
    c.execute("DELETE FROM members WHERE domain = ?1 AND device = ?2", params![domain, device]).map_err(unavailable)?;
    c.execute("UPDATE domains SET key_version = key_version + 1 WHERE id = ?1", params![domain])
        .map_err(unavailable)?;
    let after = get_domain(c, domain)?.ok_or(DeviceError::UnknownDomain)?;
    if after.members.is_empty() {
        c.execute("DELETE FROM domains WHERE id = ?1", params![domain]).map_err(unavailable)?;
    }
    Ok(after)
}

fn leave_all(c: &Connection, device: &str) -> Result<Vec<DomainRecord>, DeviceError> {
    domain_ids_of(c, device)?.iter().map(|d| remove_member(c, d, device)).collect()
}

impl Registry for SqliteRegistry {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn device(&self, id: &str) -> Fut<'_, Option<DeviceRecord>> {
        let id = id.to_owned();
        self.run(move |c| get_device(c, &id))
    }

    fn register(&self, new: DeviceRecord, replay: Replay, limit: usize) -> Fut<'_, Registered> {
        self.tx(move |c| {
            consume(c, &replay)?;
            let existing = get_device(c, &new.id)?;
            let taken: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM devices WHERE thumb = ?1 AND id <> ?2",
                    params![new.thumb, new.id],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let active: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM devices WHERE subject = ?1 AND state = 'active' AND id <> ?2",
                    params![new.subject, new.id],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let active = usize::try_from(active).unwrap_or(usize::MAX);
            let action = decide_register(existing.as_ref(), &new, taken > 0, active, limit)?;
            let (device, existing) = match (action, existing) {
                (RegisterAction::Existing, Some(mut e)) => {
                    e.entitlement = new.entitlement;
                    write_device(c, &e)?;
                    (e, true)
                }
                (RegisterAction::Replace { gen }, Some(e)) => {
                    let d = DeviceRecord { gen, state: DeviceState::Active, created: e.created, ..new };
                    write_device(c, &d)?;
                    (d, false)
                }
                _ => {
                    let d = DeviceRecord { gen: 1, state: DeviceState::Active, ..new };
                    write_device(c, &d)?;
                    (d, false)
                }
            };
            Ok(Registered { device, existing })
        })
    }

    fn refresh(&self, id: &str, gen: u64, ent: Entitlement, replay: Replay) -> Fut<'_, DeviceRecord> {
        let id = id.to_owned();
        self.tx(move |c| {
            consume(c, &replay)?;
            let mut d = get_device(c, &id)?.ok_or(DeviceError::UnknownDevice)?;
            check_actor(&d, &Actor::Device { gen, subject: None })?;
            if d.entitlement != ent || d.entitlement.until != ent.until {
                d.entitlement = ent;
                write_device(c, &d)?;
            }
            Ok(d)
        })
    }

    fn reset(&self, id: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, Changed> {
        let id = id.to_owned();
        self.tx(move |c| {
            if let Some(r) = &replay {
                consume(c, r)?;
            }
            let mut d = get_device(c, &id)?.ok_or(DeviceError::UnknownDevice)?;
            check_actor(&d, &actor)?;
            d.state = DeviceState::Reset;
            write_device(c, &d)?;
            let domains = leave_all(c, &id)?;
            Ok(Changed { device: d, domains })
        })
    }

    fn revoke(&self, id: &str, subject: &str) -> Fut<'_, Changed> {
        let (id, subject) = (id.to_owned(), subject.to_owned());
        self.tx(move |c| {
            let mut d = get_device(c, &id)?.ok_or(DeviceError::UnknownDevice)?;
            if d.subject != subject {
                return Err(DeviceError::UnknownDevice);
            }
            d.state = DeviceState::Revoked;
            write_device(c, &d)?;
            let domains = leave_all(c, &id)?;
            Ok(Changed { device: d, domains })
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
            consume(c, &replay)?;
            let d = get_device(c, &id)?.ok_or(DeviceError::UnknownDevice)?;
            check_actor(&d, &Actor::Device { gen, subject: Some(subject.clone()) })?;
            let domain_id = match domain {
                None => {
                    c.execute(
                        "INSERT INTO domains (id, subject, key_version, created) VALUES (?1, ?2, 1, ?3)",
                        params![new_id, subject, unix_now()],
                    )
                    .map_err(unavailable)?;
                    new_id
                }
                Some(did) => did,
            };
            let current = get_domain(c, &domain_id)?.ok_or(DeviceError::UnknownDomain)?;
            if check_join(Some(&current), &subject, &id, max_members)? {
                c.execute(
                    "INSERT INTO members (domain, device, joined) VALUES (?1, ?2, ?3)",
                    params![domain_id, id, unix_now()],
                )
                .map_err(unavailable)?;
            }
            get_domain(c, &domain_id)?.ok_or(DeviceError::UnknownDomain)
        })
    }

    fn leave(&self, id: &str, domain: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, DomainRecord> {
        let (id, domain) = (id.to_owned(), domain.to_owned());
        self.tx(move |c| {
            if let Some(r) = &replay {
                consume(c, r)?;
            }
            let d = get_device(c, &id)?.ok_or(DeviceError::UnknownDevice)?;
            check_actor(&d, &actor)?;
            let current = get_domain(c, &domain)?.ok_or(DeviceError::UnknownDomain)?;
            if current.subject != d.subject {
                return Err(DeviceError::UnknownDomain);
            }
            if !current.members.contains(&id) {
                return Err(DeviceError::WrongDomain);
            }
            remove_member(c, &domain, &id)
        })
    }

    fn active_devices(&self) -> Fut<'_, Vec<DeviceRecord>> {
        self.run(|c| {
            let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE state = 'active' ORDER BY id");
            let mut st = c.prepare(&sql).map_err(unavailable)?;
            let rows =
                st.query_map([], row).map_err(unavailable)?.collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
            rows.into_iter().map(Row::record).collect()
        })
    }

    fn domains(&self) -> Fut<'_, Vec<DomainRecord>> {
        self.run(|c| {
            let mut st = c.prepare("SELECT id FROM domains ORDER BY id").map_err(unavailable)?;
            let ids = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable)?;
            ids.iter().filter_map(|id| get_domain(c, id).transpose()).collect()
        })
    }

    fn domains_of(&self, id: &str) -> Fut<'_, Vec<DomainRecord>> {
        let id = id.to_owned();
        self.run(move |c| domain_ids_of(c, &id)?.iter().filter_map(|d| get_domain(c, d).transpose()).collect())
    }

    fn purge_seen(&self, now: i64) -> Fut<'_, u64> {
        self.run(move |c| {
            let n = c.execute("DELETE FROM seen WHERE expires < ?1", params![now]).map_err(unavailable)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::device::registry::tests::device;

    fn reg() -> SqliteRegistry {
        let dir = std::env::temp_dir().join(format!("drm-origin-reg-{}-{}", std::process::id(), unix_now()));
        let p = dir.join(format!("{}.sqlite3", crate::license::device::objects::new_uuid().unwrap()));
        SqliteRegistry::open(&p).unwrap()
    }

    fn replay(j: &str) -> Replay {
        Replay { jti: j.into(), expires: unix_now() + 60 }
    }

    #[tokio::test]
    async fn lifecycle_limits_replay_and_domains() {
        let r = reg();
        let a = device("a", "alice", "a");
        let got = r.register(a.clone(), replay("j1"), 2).await.unwrap();
        assert_eq!((got.device.gen, got.existing), (1, false));
        assert_eq!(r.register(a.clone(), replay("j1"), 2).await.unwrap_err(), DeviceError::Replayed);
        assert!(r.register(a.clone(), replay("j2"), 2).await.unwrap().existing, "retry with the same keys");
        r.register(device("b", "alice", "b"), replay("j3"), 2).await.unwrap();
        assert_eq!(
            r.register(device("c", "alice", "c"), replay("j4"), 2).await.unwrap_err(),
            DeviceError::LimitReached
        );
        // The refused registration wrote nothing, not even its jti.
        assert!(r.device("c").await.unwrap().is_none());
        r.register(device("c", "bob", "c"), replay("j4"), 2).await.unwrap();

        let dom = r.join("a", 1, "alice", None, "dom1".into(), 2, replay("j5")).await.unwrap();
        assert_eq!((dom.kv, dom.members.clone()), (1, vec!["a".to_owned()]));
        let dom = r.join("b", 1, "alice", Some("dom1".into()), "x".into(), 2, replay("j6")).await.unwrap();
        assert_eq!(dom.members, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(
            r.join("c", 1, "bob", Some("dom1".into()), "x".into(), 5, replay("j7")).await.unwrap_err(),
            DeviceError::UnknownDomain
        );

        let changed = r.reset("a", Actor::Device { gen: 1, subject: None }, Some(replay("j8"))).await.unwrap();
        assert_eq!(changed.device.state, DeviceState::Reset);
        assert_eq!(changed.domains[0].kv, 2, "leaving bumps the key version");
        assert_eq!(
            r.reset("a", Actor::Device { gen: 1, subject: None }, Some(replay("j9"))).await.unwrap_err(),
            DeviceError::StaleGeneration
        );
        let again = r.register(device("a", "alice", "a2"), replay("j10"), 2).await.unwrap();
        assert_eq!(again.device.gen, 2);
        let rev = r.revoke("b", "alice").await.unwrap();
        assert_eq!(rev.domains[0].members.len(), 0, "last member gone: domain deleted");
        assert!(r.domains().await.unwrap().is_empty());
        assert_eq!(r.revoke("b", "bob").await.unwrap_err(), DeviceError::UnknownDevice);
        assert_eq!(r.register(device("b", "alice", "b"), replay("j11"), 5).await.unwrap_err(), DeviceError::Revoked);
        let active: Vec<String> = r.active_devices().await.unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(active, vec!["a".to_owned(), "c".to_owned()]);
    }
}
