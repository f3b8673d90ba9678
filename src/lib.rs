//! # spokegate
//!
//! The daemon on a telemedicine spoke PC that makes clinical peripherals part of a remote consult:
//! it reads them over USB-serial, normalises every reading to one clinical model (IEEE 11073 MDC
//! codes, LOINC, UCUM units, device and gateway time), signs each message (Ed25519, COSE_Sign1) and
//! streams it to the hub over MQTT. The wire contract is `docs/contract.cddl` and
//! `docs/asyncapi.yaml`.
//!
//! # Layout
//!
//! One pipeline, one module per stage:
//!
//! ```text
//! transport (serial, BLE, camera, folder; sims) -> framing -> decode | media -> pipeline (seq, body, sign) -> queue -> mqtt
//!   transport/                                 framing/    decode/  media/   pipeline/, sign/             queue/   mqtt/
//!                                                                                    \->  hub/ (verify, dedup, view)
//! ```
//!
//! - [`device`]: one task per configured device; opens the [`transport`], reopens with capped backoff,
//!   runs [`framing`] and [`decode`], sends readings to the [`pipeline`] and acknowledges the device
//!   (HL7 ACK) only after the pipeline accepted them. Bad input becomes counted, rate-limited `event`s.
//! - [`framing`] cuts bytes into frames (MLLP, lines, fixed packets, ASTM E1381 with its ACK/NAK
//!   link protocol), bounded, resynchronising after junk.
//! - [`dialogue`] is the state machine that asks a device that speaks only when asked (a meter's
//!   wake-up, commands, counted replies, retries, clock checks), driven by the profile.
//! - [`decode`] holds pure decoders (HL7 ORU^R01, text lines, ASTM E1394 records, ...) driven by
//!   a [`profile`].
//! - [`pipeline`] assigns `seq`, builds the [`model::Body`], seals it ([`sign`]) and commits it to
//!   the durable [`queue`] (SQLite, grouped commits) before the device is acknowledged.
//! - [`media`] checks whole images from cameras and folders ([`transport::camera`],
//!   [`transport::folder`]), removes identifying metadata and cuts them into signed `media` parts.
//! - [`mqtt`] sends the queue at QoS 1, each class in `seq` order and the classes as lanes (spot,
//!   wave, media; [`mqtt::lanes`], with an optional byte budget), and deletes a message only on its
//!   PUBACK (or a hub's `ack`); birth/will status and retained device state.
//! - [`wave`] places waveform frames on a sample index (gaps named, never stitched), cuts chunks and
//!   packs samples losslessly; [`formats`] reads and writes WFDB and WAV.
//! - [`transport::ble`] (btleplug) finds, connects and subscribes to BLE devices; [`decode::gatt`]
//!   and [`decode::ble`] read GATT characteristics (RACP for stored records) and the Polar PMD stream.
//! - [`hub`] is the other end: verify, check ids, de-duplicate, print, reassemble waveforms and
//!   record them as WFDB/WAV, join image parts into checked files with sidecars
//!   (`spokegate watch --record`).
//! - [`config`] and [`profile`] read operators' TOML in two stages (serde schema, then named checks
//!   reporting every problem with file, line, column and item: [`diagnostic`]).
//! - [`ui`] serves the operator's page (live state, consult, device buttons, five languages) and
//!   the Prometheus metrics from the daemon's own picture of itself ([`snapshot`]).
//! - [`daemon`] wires the stages with bounded channels; [`shutdown`] is the one stop signal;
//!   [`systemd`] speaks sd_notify. [`demo`] and [`sim`] run it all on one machine; [`capture`] decodes
//!   offline for `spokegate profile test`.

pub mod capture;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod consult_view;
pub mod daemon;
pub mod decode;
pub mod demo;
pub mod device;
pub mod diagnostic;
pub mod dialogue;
pub mod exit;
pub mod formats;
pub mod framing;
pub mod hub;
pub mod ids;
pub mod log_output;
pub mod media;
pub mod model;
pub mod mqtt;
pub mod parallel;
pub mod pipeline;
pub mod profile;
pub mod queue;
pub mod shutdown;
pub mod sign;
pub mod sim;
pub mod snapshot;
pub mod systemd;
pub mod transport;
pub mod ui;
pub mod units;
pub mod wave;
