//! Who may sign what: every public key a party trusts, each bound to exactly one signer.
//!
//! - A **gateway key** is bound to one (`site`, `gw`): a hub accepts a gateway body only when the
//!   key that signed it is bound to the topic's site and gateway (so a key stolen from one spoke
//!   cannot speak for another).
//! - A **hub key** is bound to one hub id: a gateway obeys a command only when the key that signed
//!   it is bound to the command's `hub`.
//!
//! On disk a binding is a JWK with extra members (`"site"` and `"gw"`, or `"hub"`), one per file,
//! or a JWK Set (`{"keys": [...]}`, RFC 7517 section 5) listing several; a folder is read file by
//! file (`*.jwk`, `*.json`). A key without a binding is refused when the keyring is loaded.

use super::{KeyError, PublicKey};
use crate::ids::is_valid_id;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a key may sign for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Binding {
    Gateway { site: String, gw: String },
    Hub { hub: String },
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Gateway { site, gw } => write!(f, "gateway {site}/{gw}"),
            Binding::Hub { hub } => write!(f, "hub {hub}"),
        }
    }
}

/// A public key and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundKey {
    pub key: PublicKey,
    pub binding: Binding,
}

impl BoundKey {
    /// The JWK with its binding members.
    pub fn to_jwk(&self) -> String {
        let mut v = self.key.to_jwk_value();
        match &self.binding {
            Binding::Gateway { site, gw } => {
                v["site"] = site.as_str().into();
                v["gw"] = gw.as_str().into();
            }
            Binding::Hub { hub } => v["hub"] = hub.as_str().into(),
        }
        v.to_string()
    }

    /// Reads one JWK that carries its binding.
    pub fn from_jwk_value(v: &serde_json::Value) -> Result<Self, KeyError> {
        let key = PublicKey::from_jwk_value(v)?;
        let text = |name: &str| v.get(name).and_then(|x| x.as_str());
        let checked = |name: &str, value: &str| {
            if is_valid_id(value) {
                Ok(value.to_string())
            } else {
                Err(KeyError::BadJwk(format!("`{name}` `{value}` must match [a-z0-9][a-z0-9-]{{0,62}}")))
            }
        };
        let binding = match (text("site"), text("gw"), text("hub")) {
            (Some(site), Some(gw), None) => Binding::Gateway { site: checked("site", site)?, gw: checked("gw", gw)? },
            (None, None, Some(hub)) => Binding::Hub { hub: checked("hub", hub)? },
            (None, None, None) => {
                return Err(KeyError::BadJwk(format!(
                    "key {} is bound to nothing: add \"site\" and \"gw\" (a gateway's key) or \"hub\" (a hub's)",
                    key.kid_hex()
                )))
            }
            _ => {
                return Err(KeyError::BadJwk(format!(
                    "key {} must be bound to one gateway (\"site\" and \"gw\") or one hub (\"hub\")",
                    key.kid_hex()
                )))
            }
        };
        Ok(Self { key, binding })
    }
}

/// Why a key did not verify a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("no trusted key has kid {0}")]
    UnknownKey(String),
    #[error("key {kid} is bound to {bound}, not to {wanted}")]
    NotBound { kid: String, bound: String, wanted: String },
}

/// A keyring that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct KeyRingLoadError {
    pub path: PathBuf,
    pub why: String,
}

/// The keys a party trusts, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<[u8; 8], BoundKey>,
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = BoundKey>) -> Self {
        Self { keys: keys.into_iter().map(|k| (*k.key.kid(), k)).collect() }
    }

    /// A keyring holding one gateway's key.
    pub fn gateway(key: &PublicKey, site: &str, gw: &str) -> Self {
        Self::new([BoundKey { key: key.clone(), binding: Binding::Gateway { site: site.into(), gw: gw.into() } }])
    }

    /// Adds a key; a key already bound to something else is refused.
    pub fn insert(&mut self, k: BoundKey) -> Result<(), String> {
        if let Some(old) = self.keys.get(k.key.kid()) {
            if old.binding != k.binding {
                return Err(format!("key {} is bound to both {} and {}", k.key.kid_hex(), old.binding, k.binding));
            }
        }
        self.keys.insert(*k.key.kid(), k);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &BoundKey> {
        self.keys.values()
    }

    /// Whether some key is bound to gateway (`site`, `gw`).
    pub fn binds_gateway(&self, site: &str, gw: &str) -> bool {
        self.keys.values().any(|k| matches!(&k.binding, Binding::Gateway { site: s, gw: g } if s == site && g == gw))
    }

    fn find(&self, kid: &[u8]) -> Result<&BoundKey, KeyRingError> {
        <&[u8; 8]>::try_from(kid)
            .ok()
            .and_then(|k| self.keys.get(k))
            .ok_or_else(|| KeyRingError::UnknownKey(hex::encode(kid)))
    }

    /// The key named by `kid`, if it is bound to gateway (`site`, `gw`).
    pub fn gateway_key(&self, kid: &[u8], site: &str, gw: &str) -> Result<&PublicKey, KeyRingError> {
        let k = self.find(kid)?;
        match &k.binding {
            Binding::Gateway { site: s, gw: g } if s == site && g == gw => Ok(&k.key),
            other => Err(KeyRingError::NotBound {
                kid: k.key.kid_hex(),
                bound: other.to_string(),
                wanted: format!("gateway {site}/{gw}"),
            }),
        }
    }

    /// The key named by `kid` and the hub it is bound to.
    pub fn hub_key(&self, kid: &[u8]) -> Result<(&PublicKey, &str), KeyRingError> {
        let k = self.find(kid)?;
        match &k.binding {
            Binding::Hub { hub } => Ok((&k.key, hub.as_str())),
            other => {
                Err(KeyRingError::NotBound { kid: k.key.kid_hex(), bound: other.to_string(), wanted: "a hub".into() })
            }
        }
    }

    /// Reads keys from JWK files, JWK Set files and folders of them.
    pub fn load(paths: &[PathBuf]) -> Result<KeyRing, KeyRingLoadError> {
        let mut ring = KeyRing::default();
        for p in paths {
            ring.load_path(p)?;
        }
        Ok(ring)
    }

    fn load_path(&mut self, path: &Path) -> Result<(), KeyRingLoadError> {
        let err = |why: String| KeyRingLoadError { path: path.to_path_buf(), why };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| err(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jwk" || x == "json"))
                .collect();
            files.sort();
            for f in files {
                self.load_path(&f)?;
            }
            return Ok(());
        }
        for k in read_bound_keys(path).map_err(err)? {
            self.insert(k).map_err(err)?;
        }
        Ok(())
    }
}

/// The bound keys in one file: a JWK, or a JWK Set.
pub fn read_bound_keys(path: &Path) -> Result<Vec<BoundKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("keys").and_then(|k| k.as_array()) {
        Some(set) => set.iter().map(|k| BoundKey::from_jwk_value(k).map_err(|e| e.to_string())).collect(),
        None => BoundKey::from_jwk_value(&v).map(|k| vec![k]).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_raw([n; 32])
    }

    fn gw(n: u8, site: &str, gw: &str) -> BoundKey {
        BoundKey { key: key(n), binding: Binding::Gateway { site: site.into(), gw: gw.into() } }
    }

    #[test]
    fn a_gateway_key_verifies_only_its_own_site_and_gateway() {
        let ring = KeyRing::new([gw(1, "s1", "gw-01"), gw(2, "s2", "gw-01")]);
        assert!(ring.gateway_key(key(1).kid(), "s1", "gw-01").is_ok());
        // Two sites may both have a gw-01: each key speaks for its own.
        assert!(matches!(ring.gateway_key(key(1).kid(), "s2", "gw-01"), Err(KeyRingError::NotBound { .. })));
        assert!(matches!(ring.gateway_key(key(3).kid(), "s1", "gw-01"), Err(KeyRingError::UnknownKey(_))));
        assert!(matches!(ring.hub_key(key(1).kid()), Err(KeyRingError::NotBound { .. })));
    }

    #[test]
    fn a_hub_key_is_not_a_gateway_key() {
        let ring = KeyRing::new([BoundKey { key: key(9), binding: Binding::Hub { hub: "hub-1".into() } }]);
        assert_eq!(ring.hub_key(key(9).kid()).unwrap().1, "hub-1");
        assert!(ring.gateway_key(key(9).kid(), "s", "g").is_err());
    }

    #[test]
    fn jwks_with_bindings_load_from_files_sets_and_folders_and_unbound_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jwk"), gw(1, "s", "gw-a").to_jwk()).unwrap();
        let set = format!(r#"{{"keys":[{},{}]}}"#, gw(2, "s", "gw-b").to_jwk(), gw(3, "t", "gw-c").to_jwk());
        std::fs::write(dir.path().join("set.json"), set).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let ring = KeyRing::load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(ring.len(), 3);
        assert!(ring.gateway_key(key(3).kid(), "t", "gw-c").is_ok());

        let unbound = dir.path().join("unbound.jwk");
        std::fs::write(&unbound, key(4).to_jwk()).unwrap();
        let e = KeyRing::load(&[unbound]).unwrap_err();
        assert!(e.why.contains("bound to nothing"), "{e}");

        let twice = dir.path().join("twice.json");
        std::fs::write(&twice, format!(r#"{{"keys":[{},{}]}}"#, gw(5, "s", "x").to_jwk(), gw(5, "s", "y").to_jwk()))
            .unwrap();
        assert!(KeyRing::load(&[twice]).unwrap_err().why.contains("bound to both"));
    }
}
