//! The PostgreSQL connection and the schema's migrations (SQL files in `hub/migrations/`, built
//! into the binary, applied in order under an advisory lock so that instances starting together
//! apply each once).

use tokio_postgres::{Client, NoTls};

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "accounts", include_str!("../migrations/0002_accounts.sql")),
    (3, "clock_steps", include_str!("../migrations/0003_clock_steps.sql")),
    (4, "password_failures", include_str!("../migrations/0004_password_failures.sql")),
    (5, "observation_pages", include_str!("../migrations/0005_observation_pages.sql")),
];

/// An arbitrary constant naming the migration lock.
const MIGRATION_LOCK: i64 = 0x5370_6f6b_6548_7562;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(tokio_postgres::Error),
    #[error("PostgreSQL did not answer within {0:?}")]
    Unreachable(std::time::Duration),
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("the database's schema is version {found}; this build knows up to {known}: upgrade spokegate-hub")]
    TooNew { found: i32, known: i32 },
    #[error("the database's schema is version {found}; run `spokegate-hub migrate` (this build needs {needed})")]
    TooOld { found: i32, needed: i32 },
}

/// A connection whose driver runs on its own task.
pub async fn connect(url: &str) -> Result<Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(DbError::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A connection attempt after PostgreSQL ended one is given up after this long (its host
/// unreachable).
const RECONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// When a lost connection may be made again: at most once a second, so that while PostgreSQL is
/// away nothing piles up attempts.
pub fn redial() -> crate::at_most::AtMostEvery {
    crate::at_most::AtMostEvery::new(std::time::Duration::from_secs(1))
}

/// [`connect`] again after PostgreSQL ended a connection, given up after [`RECONNECT_WITHIN`].
pub async fn reconnect(url: &str) -> Result<Client, DbError> {
    match tokio::time::timeout(RECONNECT_WITHIN, connect(url)).await {
        Ok(r) => r,
        Err(_) => Err(DbError::Unreachable(RECONNECT_WITHIN)),
    }
}

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Applies what is missing; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = apply(client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}

async fn apply(client: &mut Client) -> Result<Vec<i32>, DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let found = version(client).await?;
    if found > latest() {
        return Err(DbError::TooNew { found, known: latest() });
    }
    let mut applied = Vec::new();
    for (v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[v, name]).await?;
        tx.commit().await?;
        tracing::info!(version = v, name, "migration applied");
        applied.push(*v);
    }
    Ok(applied)
}

async fn version(client: &Client) -> Result<i32, DbError> {
    let row = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await?;
    Ok(row.get(0))
}

/// Refuses to serve on a schema other than this build's.
pub async fn check_schema(client: &Client) -> Result<(), DbError> {
    let exists: bool = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
    let found = if exists { version(client).await? } else { 0 };
    match found.cmp(&latest()) {
        std::cmp::Ordering::Less => Err(DbError::TooOld { found, needed: latest() }),
        std::cmp::Ordering::Greater => Err(DbError::TooNew { found, known: latest() }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
