//! What the database itself counts of the system's work: statements executed, explicit
//! transactions committed and WAL written, per service database, from
//! `pg_stat_statements` (which the server must preload) and the WAL position.
//!
//! [`Counter::reset`] starts a window; [`Counter::read`] reads what happened since, at
//! once: `pg_stat_statements` is updated as each statement ends, unlike the
//! `pg_stat_database` counters, which backends flush seconds later.

use sqlx::{Connection, PgConnection};

use crate::System;

/// Reads the counters of one server, for the databases of one running system.
pub struct Counter {
    connection: tokio::sync::Mutex<PgConnection>,
    /// (service, database name)
    databases: Vec<(&'static str, String)>,
    /// The WAL position when the window began.
    since: tokio::sync::Mutex<String>,
}

/// One service database's counts over a window.
#[derive(Debug, Clone, Default)]
pub struct ServiceCounts {
    pub service: &'static str,
    /// Every statement a client sent (`BEGIN` and `COMMIT` included).
    pub statements: u64,
    /// `COMMIT`s: transactions the services opened and committed.
    pub commits: u64,
    /// WAL written by the statements (commit records included).
    pub wal_records: u64,
    pub wal_bytes: u64,
}

/// One statement, by how often it ran.
#[derive(Debug, Clone)]
pub struct Statement {
    pub service: &'static str,
    pub calls: u64,
    /// The normalised text, whitespace folded.
    pub query: String,
}

/// A window's counts.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub services: Vec<ServiceCounts>,
    /// The most run statements, most first.
    pub top: Vec<Statement>,
    /// WAL written by the whole server in the window (the WAL position moved).
    pub server_wal_bytes: u64,
}

impl Counts {
    /// The sum over the services.
    pub fn total(&self) -> ServiceCounts {
        let mut total = ServiceCounts {
            service: "all",
            ..ServiceCounts::default()
        };
        for s in &self.services {
            total.statements += s.statements;
            total.commits += s.commits;
            total.wal_records += s.wal_records;
            total.wal_bytes += s.wal_bytes;
        }
        total
    }
}

impl Counter {
    /// A counter for `system`'s databases, on the server `server_url` names. Fails with
    /// a sentence when the server does not load `pg_stat_statements`.
    pub async fn connect(server_url: &str, system: &System) -> Result<Self, String> {
        let mut connection = PgConnection::connect(server_url)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at TEST_DATABASE_URL: {e}"))?;
        let preloaded: String = sqlx::query_scalar("SHOW shared_preload_libraries")
            .fetch_one(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        if !preloaded
            .split(',')
            .any(|l| l.trim() == "pg_stat_statements")
        {
            return Err(
                "the server does not preload pg_stat_statements: run saga-bench through \
                 ./scripts/bench, which starts a PostgreSQL that does"
                    .to_owned(),
            );
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut connection)
            .await
            .map_err(|e| format!("creating pg_stat_statements: {e}"))?;
        let databases = system
            .databases()
            .map(|(service, name)| (service, name.to_owned()))
            .collect();
        Ok(Self {
            connection: tokio::sync::Mutex::new(connection),
            databases,
            since: tokio::sync::Mutex::new("0/0".to_owned()),
        })
    }

    /// Starts a window: every counter from zero.
    pub async fn reset(&self) {
        let mut connection = self.connection.lock().await;
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut *connection)
            .await
            .expect("reset pg_stat_statements");
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut *connection)
            .await
            .expect("read the WAL position");
        *self.since.lock().await = lsn;
    }

    /// What the system's databases did since [`reset`](Self::reset); the `top` most
    /// run statements.
    pub async fn read(&self, top: i64) -> Counts {
        let mut connection = self.connection.lock().await;
        let names: Vec<String> = self.databases.iter().map(|(_, n)| n.clone()).collect();
        let service_of = |name: &str| {
            self.databases
                .iter()
                .find(|(_, n)| n == name)
                .map_or("?", |(s, _)| *s)
        };
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT d.datname,
                    sum(s.calls)::int8,
                    coalesce(sum(s.calls) FILTER (WHERE upper(s.query) = 'COMMIT'), 0)::int8,
                    sum(s.wal_records)::int8,
                    sum(s.wal_bytes)::int8
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = ANY($1)
             GROUP BY d.datname",
        )
        .bind(&names)
        .fetch_all(&mut *connection)
        .await
        .expect("read pg_stat_statements");
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let services = self
            .databases
            .iter()
            .map(|(service, name)| {
                let row = rows.iter().find(|r| r.0 == *name);
                ServiceCounts {
                    service,
                    statements: row.map_or(0, |r| count(r.1)),
                    commits: row.map_or(0, |r| count(r.2)),
                    wal_records: row.map_or(0, |r| count(r.3)),
                    wal_bytes: row.map_or(0, |r| count(r.4)),
                }
            })
            .collect();
        let statements: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT d.datname, s.calls, regexp_replace(s.query, '\\s+', ' ', 'g')
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = ANY($1)
             ORDER BY s.calls DESC, s.query LIMIT $2",
        )
        .bind(&names)
        .bind(top)
        .fetch_all(&mut *connection)
        .await
        .expect("read pg_stat_statements");
        let since = self.since.lock().await.clone();
        let server_wal_bytes: i64 =
            sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::int8")
                .bind(&since)
                .fetch_one(&mut *connection)
                .await
                .expect("read the WAL position");
        Counts {
            services,
            top: statements
                .into_iter()
                .map(|(name, calls, query)| Statement {
                    service: service_of(&name),
                    calls: count(calls),
                    query,
                })
                .collect(),
            server_wal_bytes: count(server_wal_bytes),
        }
    }
}
