//! Failed password checks by name, in PostgreSQL: every instance of the hub counts into the same
//! rows, so a guesser spreading tries over the instances behind a load balancer gets no more of
//! them than one instance would give. Windows are timed by the database's clock (one for all).
//! A name is kept as its SHA-256: whatever a client sends as a name fits the table's key.

use std::time::Duration;
use tokio_postgres::Client;

/// The key of `name`'s row: the hex SHA-256 of its UTF-8.
fn key(name: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, name.as_bytes()))
}

/// How long `name` is still refused (it failed `limit` times in a window that has not ended).
pub async fn refused_for(
    db: &Client,
    name: &str,
    limit: u32,
    window: Duration,
) -> Result<Option<Duration>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "SELECT EXTRACT(EPOCH FROM since + make_interval(secs => $3) - now())::float8
             FROM password_failures
             WHERE name_sha256 = $1 AND failures >= $2 AND since + make_interval(secs => $3) > now()",
            &[&key(name), &(limit as i32), &window.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|r| Duration::from_secs_f64(r.get::<_, f64>(0).clamp(0.0, window.as_secs_f64()))))
}

/// Counts a failure of `name`: the first of a new window when its last window has ended.
pub async fn failed(db: &Client, name: &str, window: Duration) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO password_failures AS f (name_sha256, failures, since) VALUES ($1, 1, now())
         ON CONFLICT (name_sha256) DO UPDATE SET
             failures = CASE WHEN f.since + make_interval(secs => $2) <= now() THEN 1 ELSE f.failures + 1 END,
             since = CASE WHEN f.since + make_interval(secs => $2) <= now() THEN now() ELSE f.since END",
        &[&key(name), &window.as_secs_f64()],
    )
    .await?;
    Ok(())
}

/// Forgets the failures of `name` (its password matched).
pub async fn cleared(db: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    db.execute("DELETE FROM password_failures WHERE name_sha256 = $1", &[&key(name)]).await?;
    Ok(())
}

/// Deletes the rows whose window has ended (a flood of invented names leaves none behind).
pub async fn prune(db: &Client, window: Duration) -> Result<u64, tokio_postgres::Error> {
    // `since` alone on one side of the comparison, so that its index finds the rows.
    db.execute(
        "DELETE FROM password_failures WHERE since <= now() - make_interval(secs => $1)",
        &[&window.as_secs_f64()],
    )
    .await
}
