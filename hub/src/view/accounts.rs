//! The hub's own accounts: users with argon2id password hashes, their grants, and sessions
//! (the cookie's token is stored only as its SHA-256). `spokegate-hub users add|grant|list|remove`
//! manage them.

use super::access::Grant;
use super::passwords::{PasswordChecks, Verdict};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::SecureRandom;
use tokio_postgres::Client;

/// How long a sign-in lasts.
pub const SESSION_HOURS: i32 = 12;

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()))
}

/// An argon2id PHC string for `password` (a fresh random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut salt).map_err(|_| "no random source".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// True when `password` matches the PHC string `hash`.
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Creates the user, or sets a new password for one that exists; true when created.
pub async fn set_user(db: &Client, name: &str, password: &str) -> Result<bool, tokio_postgres::Error> {
    let hash = hash_password(password).expect("argon2 hashes any password");
    let created: bool = db
        .query_one(
            "INSERT INTO users (name, password_hash) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash
             RETURNING (xmax = 0)",
            &[&name, &hash],
        )
        .await?
        .get(0);
    // A new password ends every session of the old one.
    db.execute("DELETE FROM sessions WHERE name = $1", &[&name]).await?;
    Ok(created)
}

pub async fn exists(db: &Client, name: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(db.query_opt("SELECT 1 FROM users WHERE name = $1", &[&name]).await?.is_some())
}

/// Removes the user, their grants and sessions; false when there was none.
pub async fn remove(db: &Client, name: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(db.execute("DELETE FROM users WHERE name = $1", &[&name]).await? == 1)
}

/// Adds a grant; false when the user has it already. Errs when the user does not exist.
pub async fn grant(db: &Client, name: &str, g: &Grant) -> Result<bool, tokio_postgres::Error> {
    Ok(db
        .execute(
            "INSERT INTO grants (name, site, gw, consult) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&name, &g.site, &g.gw, &g.consult],
        )
        .await?
        == 1)
}

pub async fn grants(db: &Client, name: &str) -> Result<Vec<Grant>, tokio_postgres::Error> {
    Ok(db
        .query("SELECT site, gw, consult FROM grants WHERE name = $1 ORDER BY site, gw, consult", &[&name])
        .await?
        .into_iter()
        .map(|r| Grant { site: r.get(0), gw: r.get(1), consult: r.get(2) })
        .collect())
}

/// Every user and their grants, for `users list`.
pub async fn list(db: &Client) -> Result<Vec<(String, Vec<Grant>)>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for r in db.query("SELECT name FROM users ORDER BY name", &[]).await? {
        let name: String = r.get(0);
        let g = grants(db, &name).await?;
        out.push((name, g));
    }
    Ok(out)
}

/// Signs `name` in: the cookie's token and the page's CSRF token, or why not (a wrong name or
/// password, the same work done either way; or too many failures for the name).
pub async fn sign_in(
    db: &Client,
    checks: &PasswordChecks,
    name: &str,
    password: &str,
) -> Result<Result<(String, String), Verdict>, tokio_postgres::Error> {
    match password_is(db, checks, name, password).await? {
        Verdict::Match => {}
        refused => return Ok(Err(refused)),
    }
    let (token, csrf) = (random_hex(32), random_hex(16));
    db.execute("DELETE FROM sessions WHERE expires_at < now()", &[]).await?;
    db.execute(
        "INSERT INTO sessions (token_sha256, name, csrf, expires_at) VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
        &[&sha256_hex(&token), &name, &csrf, &SESSION_HOURS],
    )
    .await?;
    Ok(Ok((token, csrf)))
}

/// Whether `name` is a user whose password is `password` (an unknown user costs as much as a
/// known one: no timing difference tells which exist), through `checks` (throttled, and
/// remembered once matched).
pub async fn password_is(
    db: &Client,
    checks: &PasswordChecks,
    name: &str,
    password: &str,
) -> Result<Verdict, tokio_postgres::Error> {
    // A name holding U+0000 names nobody (PostgreSQL's text cannot hold it; asking would fail).
    let stored: Option<String> = match name.contains('\0') {
        true => None,
        false => db.query_opt("SELECT password_hash FROM users WHERE name = $1", &[&name]).await?.map(|r| r.get(0)),
    };
    checks.check(db, name, password, stored, UNKNOWN_USER_HASH).await
}

/// An argon2id hash of a random password nobody knows.
pub(crate) const UNKNOWN_USER_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3Bva2VnYXRlLXVua25vd24$0QyOEhmxzKsBTLcmvL1PKn1HbzBhB0KKxJH/X7MVpRA";

/// The user and CSRF token of a live session.
pub async fn session(db: &Client, token: &str) -> Result<Option<(String, String)>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT name, csrf FROM sessions WHERE token_sha256 = $1 AND expires_at > now()",
            &[&sha256_hex(token)],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub async fn sign_out(db: &Client, token: &str) -> Result<(), tokio_postgres::Error> {
    db.execute("DELETE FROM sessions WHERE token_sha256 = $1", &[&sha256_hex(token)]).await?;
    Ok(())
}

/// The CSRF token of a user signed in by the proxy: derived from the hub's secret and the name
/// (stable across instances, unknown to other sites).
pub fn proxy_csrf(secret: &[u8], name: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(&ring::hmac::sign(&key, format!("csrf:{name}").as_bytes()).as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_own_hash_only() {
        let h = hash_password("tele-consult 42").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "tele-consult 42"));
        assert!(!password_matches(&h, "tele-consult 43"));
        assert_ne!(h, hash_password("tele-consult 42").unwrap(), "a fresh salt each time");
        assert!(!password_matches("not a hash", "x"));
    }

    #[test]
    fn the_unknown_user_hash_is_a_real_argon2id_hash() {
        assert!(PasswordHash::new(UNKNOWN_USER_HASH).is_ok());
        assert!(!password_matches(UNKNOWN_USER_HASH, ""));
    }
}
