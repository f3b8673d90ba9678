//! The hub service against real services: the machine's PostgreSQL (a database per test), a
//! mosquitto and a 3-node NATS cluster started by the tests on loopback ports, real gateways (the
//! daemon) publishing over MQTT, and `spokegate-hub` processes.

mod capability;
mod claims;
mod cli;
mod clock_steps;
mod code_search;
mod date_search;
mod device_search;
mod exactly_once;
mod fhir;
mod fhir_client;
mod images;
#[path = "../../../tests/support/installed.rs"]
mod installed;
#[path = "../../../tests/support/machine.rs"]
mod machine;
mod nul_characters;
mod package;
mod paging;
mod passwords;
mod quantity_search;
mod quarantine;
mod reconnect;
mod retention;
mod service;
mod support;
mod tls;
#[path = "../../../tests/support/tls_broker.rs"]
mod tls_broker;
mod under_systemd;
mod view;
