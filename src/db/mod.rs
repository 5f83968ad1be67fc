//! Shared PostgreSQL plumbing for the stores that several origin nodes share (the key store; the
//! device registry uses the same pattern): one connection driven by a dedicated thread with its
//! own small runtime, versioned migrations shipped in the repository (`migrations/postgres`), and
//! blocking calls with a deadline, usable from request handlers and from blocking threads alike.
//!
//! The database URL may hold a password: it is never logged, formatted or put into an error;
//! [`PgTarget`] (user@host:port/db) is what messages name.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

/// One migration: a name recorded in `drm_origin_migrations` once applied, and its SQL.
pub struct Migration {
    /// Unique, ordered name (the file name).
    pub name: &'static str,
    /// Statements, run in one transaction.
    pub sql: &'static str,
}

/// Every migration of the shared schema, in order.
pub const MIGRATIONS: &[Migration] =
    &[Migration { name: "0001_content_keys", sql: include_str!("../../migrations/postgres/0001_content_keys.sql") }];

/// Why a database call failed (never carries the URL or a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not a libpq URL / key-value string.
    #[error("database url is invalid: {0}")]
    BadUrl(String),
    /// Connecting, migrating or the query failed; `{target}` names the server.
    #[error("{target}: {reason}")]
    Failed {
        /// user@host:port/db
        target: String,
        /// What failed.
        reason: String,
    },
}

/// Where a connection goes, for messages: `user@host:port/db`, no password.
#[derive(Clone, Debug)]
pub struct PgTarget(pub String);

type Job = Box<dyn FnOnce(Result<Arc<Client>, String>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A shared connection to one PostgreSQL database.
pub struct Pg {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    target: PgTarget,
    timeout: Duration,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("target", &self.target.0).finish_non_exhaustive()
    }
}

impl Pg {
    /// Starts the connection thread for `url`. Does not wait for the server: a node may start
    /// while the database is down, and (re)connects on the next call. `timeout` bounds every
    /// call, connecting included.
    pub fn open(url: &str, timeout: Duration) -> Result<Pg, DbError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| DbError::BadUrl(without_secrets(&e.to_string())))?;
        config.connect_timeout(timeout);
        config.application_name("drm-origin");
        let target = PgTarget(describe(&config));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Failed { target: target.0.clone(), reason: format!("runtime: {e}") })?;
        let t = target.clone();
        std::thread::Builder::new()
            .name("drm-origin-pg".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut client: Option<Arc<Client>> = None;
                    while let Some(job) = rx.recv().await {
                        if client.as_ref().is_none_or(|c| c.is_closed()) {
                            client = match connect(&config, &t).await {
                                Ok(c) => Some(c),
                                Err(why) => {
                                    tokio::spawn(job(Err(why)));
                                    continue;
                                }
                            };
                        }
                        if let Some(c) = &client {
                            tokio::spawn(job(Ok(c.clone())));
                        }
                    }
                });
            })
            .map_err(|e| DbError::Failed { target: target.0.clone(), reason: format!("thread: {e}") })?;
        Ok(Pg { jobs: tx, target, timeout })
    }

    /// Who this connects to (for messages).
    pub fn target(&self) -> &str {
        &self.target.0
    }

    /// Runs `f` on the connection and waits for its answer (at most the timeout). Calls run
    /// concurrently on the one connection (pipelined): each must be made of statements that
    /// stand alone. Never `BEGIN … COMMIT` through it: two calls' transaction blocks would
    /// interleave on the shared session. Blocking: on
    /// a worker of a multi-threaded runtime the wait is announced with `block_in_place`.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let (reply, answer) = std::sync::mpsc::sync_channel::<Result<T, String>>(1);
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let out = match client {
                    Ok(c) => f(c).await.map_err(|e| describe_error(&e)),
                    Err(why) => Err(why),
                };
                let _ = reply.send(out);
            })
        });
        let failed = |reason: String| DbError::Failed { target: self.target.0.clone(), reason };
        self.jobs.send(job).map_err(|_| failed("connection thread ended".into()))?;
        let timeout = self.timeout;
        let wait = move || answer.recv_timeout(timeout);
        let got = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        match got {
            Ok(r) => r.map_err(failed),
            Err(_) => Err(failed(format!("no answer within {} ms", timeout.as_millis()))),
        }
    }
}

async fn connect(config: &tokio_postgres::Config, target: &PgTarget) -> Result<Arc<Client>, String> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| describe_error(&e))?;
    let t = target.0.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(database = %t, reason = %describe_error(&e), "database connection lost");
        }
    });
    migrate(&client).await.map_err(|e| format!("migrations: {}", describe_error(&e)))?;
    tracing::info!(database = %target.0, "database connected");
    Ok(Arc::new(client))
}

/// Applies the migrations not yet recorded, in one transaction under an advisory lock: nodes
/// starting together run each migration once.
async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS drm_origin_migrations (name text PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .or_else(|e| {
            // Two nodes creating the table at once: the loser sees a unique violation.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    client.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7308242137516920931)").await?;
    let result = async {
        for m in MIGRATIONS {
            let done = client.query_opt("SELECT 1 FROM drm_origin_migrations WHERE name = $1", &[&m.name]).await?;
            if done.is_none() {
                client.batch_execute(m.sql).await?;
                client.execute("INSERT INTO drm_origin_migrations (name) VALUES ($1)", &[&m.name]).await?;
                tracing::info!(migration = m.name, "database migration applied");
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    }
    .await;
    match result {
        Ok(()) => client.batch_execute("COMMIT").await,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// user@host:port/db of a parsed config.
fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{}@{host}:{port}/{}", c.get_user().unwrap_or("?"), c.get_dbname().unwrap_or("?"))
}

/// The error's message and, for server errors, its detail; tokio-postgres never quotes the
/// password, and we never add the URL.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// Parse errors quote no input in tokio-postgres; belt and braces, drop anything after `password`.
fn without_secrets(msg: &str) -> String {
    match msg.find("password") {
        Some(i) => format!("{}…", msg.get(..i).unwrap_or("")),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_hides_the_password() {
        let pg = Pg::open("postgres://app:s3cret@127.0.0.1:1/keys", Duration::from_millis(300)).unwrap();
        assert_eq!(pg.target(), "app@127.0.0.1:1/keys");
        assert!(!format!("{pg:?}").contains("s3cret"));
        // Nothing listens on port 1: a clear error, quickly, without the password.
        let e = pg.call(|c| async move { c.simple_query("SELECT 1").await.map(|_| ()) }).unwrap_err().to_string();
        assert!(e.contains("app@127.0.0.1:1/keys") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn bad_url_is_an_error() {
        assert!(matches!(Pg::open("postgres://[nope", Duration::from_secs(1)), Err(DbError::BadUrl(_))));
    }
}
