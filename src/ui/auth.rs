//! Who may change state from the page: a per-page token on every request that changes anything
//! (a page on another site cannot read it, and cannot send the custom header without a CORS
//! preflight the gateway never allows), and, when the page listens on another address than
//! loopback, the operator's password (HTTP Basic, checked against a PBKDF2-HMAC-SHA256 hash).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;

/// Tokens kept (one per page load; the oldest are forgotten).
const TOKENS_KEPT: usize = 64;

/// Tokens handed to pages.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<VecDeque<String>>,
}

impl Tokens {
    /// A new token for a page load.
    pub fn issue(&self) -> String {
        let mut bytes = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap_or_default();
        let token = hex::encode(bytes);
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if issued.len() >= TOKENS_KEPT {
            issued.pop_front();
        }
        issued.push_back(token.clone());
        token
    }

    pub fn valid(&self, token: &str) -> bool {
        !token.is_empty() && self.issued.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|t| t == token)
    }
}

/// `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

const ITERATIONS: u32 = 310_000;

impl PasswordHash {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('$');
        if parts.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations = NonZeroU32::new(parts.next()?.parse().ok()?)?;
        let salt = hex::decode(parts.next()?).ok()?;
        let hash = hex::decode(parts.next()?).ok()?;
        (parts.next().is_none() && salt.len() >= 16 && hash.len() == 32).then_some(Self { iterations, salt, hash })
    }

    /// A new hash of `password` with a random salt.
    pub fn hash_of(password: &str) -> String {
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).unwrap_or_default();
        let mut hash = [0u8; 32];
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut hash);
        format!("pbkdf2-sha256${ITERATIONS}${}${}", hex::encode(salt), hex::encode(hash))
    }

    pub fn verify(&self, password: &str) -> bool {
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

/// The password of an `Authorization: Basic` header (any user name).
pub fn basic_password(header: &str) -> Option<String> {
    basic_credentials(header).map(|(_, p)| p)
}

/// The user and password of an `Authorization: Basic` header value (RFC 7617: the scheme in any
/// case, UTF-8, the first colon ends the user id).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_as_rfc_7617_writes_them() {
        // RFC 7617 section 2's example: Aladdin / open sesame.
        let aladdin = Some(("Aladdin".to_string(), "open sesame".to_string()));
        assert_eq!(basic_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), aladdin);
        // The scheme in any case; a password may hold colons, the user id may not.
        assert_eq!(basic_credentials("basic ZHI6YTpiOmM="), Some(("dr".into(), "a:b:c".into())));
        assert_eq!(basic_password("Basic ZHI6YTpiOmM=").as_deref(), Some("a:b:c"));
        for bad in ["Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Basic !!!", "Basic bm9jb2xvbg==", "Basic"] {
            assert_eq!(basic_credentials(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = PasswordHash::parse(&PasswordHash::hash_of("spoke at Rangpur")).unwrap();
        assert!(h.verify("spoke at Rangpur"));
        assert!(!h.verify("spoke at rangpur"));
        assert_eq!(PasswordHash::parse("md5$1$00$00"), None);
    }

    #[test]
    fn only_issued_tokens_are_valid_and_old_ones_are_forgotten() {
        let t = Tokens::default();
        let first = t.issue();
        assert!(t.valid(&first));
        assert!(!t.valid("") && !t.valid("forged"));
        for _ in 0..TOKENS_KEPT {
            t.issue();
        }
        assert!(!t.valid(&first));
    }

    #[test]
    fn basic_auth_gives_the_password() {
        assert_eq!(basic_password("Basic b3BlcmF0b3I6czNjcjN0").as_deref(), Some("s3cr3t"));
        assert_eq!(basic_password("Bearer x"), None);
    }
}
