//! Ed25519 signing keys (a gateway's, or a hub's): a PKCS#8 document in PEM
//! (`-----BEGIN PRIVATE KEY-----`), readable by OpenSSL. Like ssh, spokegate refuses a key file that
//! others can read. A hub key's file says whose it is in the explanatory text before the PEM block
//! (RFC 7468 section 5.2): a line `spokegate-hub: <hub id>`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: permissions {mode:o} let others read the private key; run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: not an Ed25519 PKCS#8 private key in PEM ({why})")]
    Malformed { path: PathBuf, why: String },
    #[error("{path} already exists; refusing to overwrite a key (remove it first)")]
    Exists { path: PathBuf },
    #[error("not an Ed25519 public JWK: {0}")]
    BadJwk(String),
    #[error("key generation failed")]
    Generate,
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
/// The explanatory line naming a hub key's hub.
const HUB_LABEL: &str = "spokegate-hub:";

/// The permission bits of a private file (a signing key, a TLS client key) when group or others
/// may read or write it; `None` when only its owner may.
pub fn open_to_others(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// A private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
    /// The hub this key signs for (hub keys only).
    hub: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.public.kid_hex()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Creates a new gateway key file with mode 0600 (never overwrites one).
    pub fn generate(path: &Path) -> Result<SigningKey, KeyError> {
        Self::create(path, None)
    }

    /// Creates a new hub key file for hub `hub` with mode 0600 (never overwrites one).
    pub fn generate_hub(path: &Path, hub: &str) -> Result<SigningKey, KeyError> {
        Self::create(path, Some(hub))
    }

    fn create(path: &Path, hub: Option<&str>) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists { path: path.to_path_buf() }
            } else {
                io(e)
            }
        })?;
        let label = hub.map(|h| format!("{HUB_LABEL} {h}\n")).unwrap_or_default();
        let pem = format!("{label}{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(doc.as_ref()));
        file.write_all(pem.as_bytes()).and_then(|_| file.sync_all()).map_err(io)?;
        let mut key = Self::from_pkcs8(path, doc.as_ref())?;
        key.hub = hub.map(str::to_string);
        Ok(key)
    }

    /// Loads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        if let Some(mode) = open_to_others(path).map_err(io)? {
            return Err(KeyError::TooOpen { path: path.to_path_buf(), mode });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        let malformed = |why: &str| KeyError::Malformed { path: path.to_path_buf(), why: why.into() };
        let begin = text.find(PEM_BEGIN).ok_or_else(|| malformed("no PRIVATE KEY PEM block"))?;
        let (explanatory, block) = text.split_at(begin);
        let inner = block
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|t| t.strip_suffix(PEM_END))
            .ok_or_else(|| malformed("no PRIVATE KEY PEM block"))?;
        let b64: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| malformed("bad base64"))?;
        let mut key = Self::from_pkcs8(path, &der)?;
        key.hub = explanatory.lines().find_map(|l| l.trim().strip_prefix(HUB_LABEL)).map(|h| h.trim().to_string());
        if key.hub.as_deref().is_some_and(|h| !crate::ids::is_valid_id(h)) {
            return Err(malformed("the hub id must match [a-z0-9][a-z0-9-]{0,62}"));
        }
        Ok(key)
    }

    fn from_pkcs8(path: &Path, der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::Malformed { path: path.to_path_buf(), why: e.to_string() })?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningKey { pair, public: PublicKey::from_raw(raw), hub: None })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The hub this key signs for, when it is a hub key.
    pub fn hub(&self) -> Option<&str> {
        self.hub.as_deref()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// The public half, as the hub holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
    kid: [u8; 8],
    /// The key as a curve point, decompressed once (a hub verifies thousands of messages a
    /// second with one key); `None` when the 32 bytes are no point, so nothing verifies.
    point: Option<ed25519_dalek::VerifyingKey>,
}

impl PublicKey {
    pub fn from_raw(raw: [u8; 32]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&digest.as_ref()[..8]);
        Self { raw, kid, point: ed25519_dalek::VerifyingKey::from_bytes(&raw).ok() }
    }

    /// The COSE `kid`: the first 8 bytes of SHA-256 of the raw public key.
    pub fn kid(&self) -> &[u8; 8] {
        &self.kid
    }

    pub fn kid_hex(&self) -> String {
        hex::encode(self.kid)
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    /// RFC 8032 verification as ring does it (S below the group order, R' = \[S\]B - \[k\]A encoded
    /// and compared byte for byte with R, k hashed over the key's bytes as given), with the key's
    /// point decompressed once instead of for every message: ed25519-dalek's `verify`, which
    /// accepts exactly what ring accepts (`tests/it/ed25519_agreement.rs`), in about two thirds
    /// of ring's time here. Signing stays with ring.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let (Some(point), Ok(signature)) = (&self.point, ed25519_dalek::Signature::from_slice(signature)) else {
            return false;
        };
        ed25519_dalek::Verifier::verify(point, message, &signature).is_ok()
    }

    /// `{"kty":"OKP","crv":"Ed25519","x":...,"kid":...}` (RFC 8037).
    pub fn to_jwk(&self) -> String {
        self.to_jwk_value().to_string()
    }

    /// The JWK as a JSON object, for adding members (`site`, `gw`, `hub`).
    pub fn to_jwk_value(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.raw),
            "kid": self.kid_hex(),
        })
    }

    /// Reads a public JWK; a `kid` in it must match the key.
    pub fn from_jwk(text: &str) -> Result<Self, KeyError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| KeyError::BadJwk(e.to_string()))?;
        Self::from_jwk_value(&v)
    }

    /// Reads a public JWK already parsed as JSON.
    pub fn from_jwk_value(v: &serde_json::Value) -> Result<Self, KeyError> {
        let bad = |w: &str| KeyError::BadJwk(w.to_string());
        if v["kty"] != "OKP" || v["crv"] != "Ed25519" {
            return Err(bad("kty must be OKP and crv Ed25519"));
        }
        let x = v["x"].as_str().ok_or_else(|| bad("no x"))?;
        let raw: [u8; 32] = URL_SAFE_NO_PAD
            .decode(x.trim_end_matches('='))
            .map_err(|_| bad("x is not base64url"))?
            .try_into()
            .map_err(|_| bad("x is not 32 bytes"))?;
        let key = Self::from_raw(raw);
        if let Some(kid) = v["kid"].as_str() {
            if kid != key.kid_hex() {
                return Err(bad("kid does not match x"));
            }
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_reloads_and_verifies_its_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/gateway.key");
        let key = SigningKey::generate(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = SigningKey::load(&path).unwrap();
        assert_eq!(again.public(), key.public());
        let sig = again.sign(b"hello");
        assert!(key.public().verify(b"hello", &sig));
        assert!(!key.public().verify(b"hellO", &sig));
        assert!(matches!(SigningKey::generate(&path), Err(KeyError::Exists { .. })));
        assert_eq!(again.hub(), None);
    }

    #[test]
    fn a_hub_key_file_names_its_hub_and_stays_a_pem_openssl_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let key = SigningKey::generate_hub(&path, "hub-dhaka").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("spokegate-hub: hub-dhaka\n-----BEGIN PRIVATE KEY-----"), "{text}");
        let again = SigningKey::load(&path).unwrap();
        assert_eq!((again.hub(), again.public()), (Some("hub-dhaka"), key.public()));
        fs::write(&path, text.replace("hub-dhaka", "Hub Dhaka")).unwrap();
        assert!(matches!(SigningKey::load(&path), Err(KeyError::Malformed { .. })));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.key");
        SigningKey::generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SigningKey::load(&path), Err(KeyError::TooOpen { mode: 0o644, .. })));
    }

    #[test]
    fn jwk_round_trips_and_a_wrong_kid_is_refused() {
        let key = PublicKey::from_raw([7u8; 32]);
        assert_eq!(PublicKey::from_jwk(&key.to_jwk()).unwrap(), key);
        let forged = key.to_jwk().replace(&key.kid_hex(), "0000000000000000");
        assert!(PublicKey::from_jwk(&forged).is_err());
    }

    #[test]
    fn rfc8032_test_vector_1_verifies() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let pk: [u8; 32] = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .unwrap()
            .try_into()
            .unwrap();
        let sig = hex::decode(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        )
        .unwrap();
        assert!(PublicKey::from_raw(pk).verify(b"", &sig));
    }
}
