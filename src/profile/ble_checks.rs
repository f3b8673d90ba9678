//! The checks of BLE profiles: the `[ble]` service, the `gatt` decoder's characteristics and
//! fields, and the `polar-pmd-ecg` decoder.

use super::compile::Checker;
use super::raw::RawProfile;
use super::{BleSpec, DecoderSpec, GattSpec, PmdSpec};
use crate::decode::gatt::{self, Characteristic};
use std::time::Duration;

impl Checker<'_> {
    /// `Some(None)` for serial profiles.
    pub(super) fn ble(&mut self, raw: &RawProfile) -> Option<Option<BleSpec>> {
        let is_ble = matches!(raw.decoder.kind.get_ref().as_str(), "gatt" | "polar-pmd-ecg");
        match (&raw.ble, is_ble) {
            (Some(b), true) => {
                let service = &b.get_ref().service;
                match gatt::parse_uuid(service.get_ref()) {
                    Some(uuid) => Some(Some(BleSpec { service: uuid })),
                    None => {
                        self.problem(service, "ble.service", "must be a UUID: `0x1808` or the 128-bit form");
                        None
                    }
                }
            }
            (None, true) => {
                self.problem(&raw.decoder.kind, "ble", "a BLE decoder needs [ble] service = \"0x....\"");
                None
            }
            (Some(b), false) => {
                self.problem(b, "ble", "[ble] belongs to BLE decoders (gatt, polar-pmd-ecg)");
                None
            }
            (None, false) => Some(None),
        }
    }

    fn answer_timeout(&mut self, raw: &RawProfile) -> Duration {
        match &raw.decoder.answer_timeout_secs {
            Some(t) if !(1..=600).contains(t.get_ref()) => {
                self.problem(t, "decoder.answer_timeout_secs", "must be 1 to 600 seconds");
                Duration::from_secs(10)
            }
            Some(t) => Duration::from_secs(*t.get_ref()),
            None => Duration::from_secs(10),
        }
    }

    pub(super) fn gatt(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        let d = &raw.decoder;
        let mut characteristics = Vec::new();
        for (i, c) in d.characteristics.iter().enumerate() {
            let known = gatt::parse_uuid(c.get_ref())
                .and_then(|u| gatt::short_uuid(&u))
                .and_then(Characteristic::from_uuid16)
                .filter(|c| !matches!(c, Characteristic::Racp | Characteristic::PlxFeatures));
            match known {
                Some(k) => characteristics.push(k),
                None => self.problem(
                    c,
                    &format!("decoder.characteristics[{i}]"),
                    format!(
                        "`{}` is not a measurement the gatt decoder reads (0x2A18, 0x2A34, 0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F)",
                        c.get_ref()
                    ),
                ),
            }
        }
        if d.characteristics.is_empty() {
            self.problem(
                &d.kind,
                "decoder.characteristics",
                "list the characteristics to subscribe to, e.g. [\"0x2A37\"]",
            );
        }
        let racp = d.racp.unwrap_or(false);
        if racp && !characteristics.contains(&Characteristic::GlucoseMeasurement) {
            self.problem(&d.kind, "decoder.racp", "stored records (RACP) come as Glucose Measurements: add 0x2A18");
        }
        let sources: Vec<&str> = characteristics.iter().flat_map(|c| gatt::sources(*c).iter().copied()).collect();
        let fields = self.field_maps(
            &raw.fields,
            |name| sources.contains(&name),
            "no subscribed characteristic gives `{}`",
            false,
        );
        if fields.is_empty() {
            self.problem(&d.kind, "field", "a gatt decoder needs at least one [[field]] mapping a value to a code");
        }
        let answer_timeout = self.answer_timeout(raw);
        Some(DecoderSpec::Gatt(GattSpec { characteristics, racp, answer_timeout, fields }))
    }

    pub(super) fn pmd(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        let answer_timeout = self.answer_timeout(raw);
        Some(DecoderSpec::PolarPmdEcg(PmdSpec { answer_timeout }))
    }
}
