#![allow(dead_code)]
//! What the targets share: the shipped profiles and a gateway and a hub key bound in one keyring.

use spokegate::sign::{Binding, BoundKey, KeyRing, SigningKey};
use std::sync::OnceLock;

pub const SITE: &str = "site-1";
pub const GW: &str = "gw-1";
pub const HUB: &str = "hub-1";

pub struct Keys {
    pub gateway: SigningKey,
    pub hub: SigningKey,
    pub ring: KeyRing,
}

/// A fresh gateway key and hub key (made once a run, in a temporary folder), both trusted.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("spokegate-fuzz-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let gateway = SigningKey::generate(&dir.join("gw.key.pem")).expect("gateway key");
        let hub = SigningKey::generate_hub(&dir.join("hub.key.pem"), HUB).expect("hub key");
        let ring = KeyRing::new([
            BoundKey { key: gateway.public().clone(), binding: Binding::Gateway { site: SITE.into(), gw: GW.into() } },
            BoundKey { key: hub.public().clone(), binding: Binding::Hub { hub: HUB.into() } },
        ]);
        let _ = std::fs::remove_dir_all(&dir);
        Keys { gateway, hub, ring }
    })
}

/// The shipped profiles, compiled once.
pub fn profiles() -> &'static spokegate::profile::ProfileRegistry {
    static REG: OnceLock<spokegate::profile::ProfileRegistry> = OnceLock::new();
    REG.get_or_init(|| spokegate::profile::ProfileRegistry::builtin().expect("the shipped profiles compile"))
}
