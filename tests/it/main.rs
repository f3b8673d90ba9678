//! Integration tests, one binary (ripgrep `tests/tests.rs` style), against real components: a
//! mosquitto started per test on a free loopback port, pseudo-terminals as serial devices, the real
//! daemon, and an independent Python COSE verifier.

mod astm;
mod ble;
#[path = "../support/browser.rs"]
mod chromium;
mod cli;
mod commands;
mod config_errors;
mod consult;
mod demo_view;
pub mod durability;
mod e2e;
mod ed25519_agreement;
mod event_codes;
mod gatt_vectors;
mod harness;
pub mod hub_delivery;
mod hub_trust;
#[path = "../support/installed.rs"]
mod installed;
mod large_still;
#[path = "../support/machine.rs"]
mod machine;
mod media;
mod media_support;
mod meters;
mod package;
mod page;
mod python_hub;
mod robustness;
mod service;
mod tls;
#[path = "../support/tls_broker.rs"]
mod tls_broker;
mod under_systemd;
mod units;
mod unplug;
mod waves;
