//! A BLE notification -> what it means for the device session: readings (mapped to codes by the
//! profile's `[[field]]`s), a control point answer, or waveform samples. Pure, like every decoder.

use super::gatt::{self, pmd, racp, Characteristic, GattReading};
use super::{apply_field, DecodeError, WaveFrame};
use crate::model::{Event, Observation, Severity, Unit};
use crate::profile::{DecoderSpec, GattSpec};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum Notified {
    /// Readings of a measurement or (for glucose) of a measurement context.
    Reading(Readings),
    /// The Record Access Control Point answered.
    Racp(racp::Response),
    /// Polar PMD control point answered.
    PmdControl(pmd::ControlResponse),
    /// Waveform samples (no counter yet: see [`pmd::FrameClock`]); the device time of the last
    /// one in microseconds, and in the device's own nanoseconds.
    Samples(WaveFrame, i64, u64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    pub observations: Vec<Observation>,
    pub tdev: Option<i64>,
    /// Glucose record number, and whether a context notification for it follows.
    pub record: Option<u16>,
    pub context_follows: bool,
    pub is_context: bool,
    /// The context the device gave (also on every observation).
    pub ctx: std::collections::BTreeMap<String, String>,
    /// Values the profile refused (out of range, unit mismatch).
    pub problems: Vec<Event>,
    /// Values the device sent that the profile maps to no code (not forwarded).
    pub unmapped: Vec<&'static str>,
}

impl Readings {
    /// Joins a Glucose Measurement Context to its measurement: the context's values, and its
    /// context (meal, tester, health, medication) on every observation.
    pub fn join(&mut self, context: Readings) {
        for o in &mut self.observations {
            let ctx = o.ctx.get_or_insert_with(Default::default);
            for (k, v) in &context.ctx {
                if k != "record" {
                    ctx.insert(k.clone(), v.clone());
                }
            }
        }
        self.observations.extend(context.observations);
        self.problems.extend(context.problems);
        for u in context.unmapped {
            if !self.unmapped.contains(&u) {
                self.unmapped.push(u);
            }
        }
    }
}

fn bad(code: &'static str, c: impl std::fmt::Display, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(code, format!("{c}: {e}"))
}

/// Decodes one notification from characteristic `from`.
pub fn decode(spec: &DecoderSpec, from: &Uuid, bytes: &[u8]) -> Result<Notified, DecodeError> {
    match spec {
        DecoderSpec::Gatt(g) => gatt_notification(g, from, bytes),
        DecoderSpec::PolarPmdEcg(_) => {
            if *from == pmd::CONTROL_POINT {
                return pmd::decode_control_response(bytes)
                    .map(Notified::PmdControl)
                    .map_err(|e| bad("pmd-control-invalid", "PMD control point", e));
            }
            let f = pmd::decode_ecg(bytes).map_err(|e| bad("pmd-frame-invalid", "PMD data", e))?;
            Ok(Notified::Samples(WaveFrame { counter: None, samples: f.samples }, f.last_sample_micros, f.timestamp_ns))
        }
        _ => Err(DecodeError::new("ble-notification", "this profile does not read BLE notifications")),
    }
}

fn gatt_notification(spec: &GattSpec, from: &Uuid, bytes: &[u8]) -> Result<Notified, DecodeError> {
    let c = gatt::short_uuid(from)
        .and_then(Characteristic::from_uuid16)
        .ok_or_else(|| DecodeError::new("characteristic-unknown", format!("notification from {from}")))?;
    if c == Characteristic::Racp {
        return racp::decode_response(bytes).map(Notified::Racp).map_err(|e| bad("racp-invalid", "RACP", e));
    }
    let reading = gatt::decode(c, bytes).map_err(|e| bad("gatt-invalid", format!("0x{:04X}", c.uuid16()), e))?;
    Ok(Notified::Reading(readings(spec, c, reading)))
}

/// Maps a characteristic's named values to the profile's codes.
pub fn readings(spec: &GattSpec, c: Characteristic, r: GattReading) -> Readings {
    let mut out = Readings {
        tdev: r.tdev,
        record: r.record,
        context_follows: r.context_follows,
        is_context: c == Characteristic::GlucoseContext,
        ctx: r.ctx.clone(),
        ..Default::default()
    };
    let ctx = (!r.ctx.is_empty()).then(|| r.ctx.clone());
    for v in &r.values {
        let Some(field) = spec.fields.iter().find(|f| f.source == v.source) else {
            if !out.unmapped.contains(&v.source) {
                out.unmapped.push(v.source);
            }
            continue;
        };
        if !field.unit.ucum.is_empty() && field.unit.ucum != v.ucum {
            out.problems.push(
                Event::new(
                    "unit-unmapped",
                    Severity::Warn,
                    format!("`{}` came in {}, the profile expects {}", v.source, v.ucum, field.unit.ucum),
                )
                .with("field", v.source),
            );
            continue;
        }
        let val = match v.val {
            Some(x) => match apply_field(field, x, &x.to_string()) {
                Ok(y) => Some(y),
                Err(e) => {
                    out.problems.push(e);
                    continue;
                }
            },
            None => None,
        };
        // Fast and slow averages of a pulse oximeter are the same measurand at another modality
        // (IEEE 11073-10404: MDC_MODALITY_FAST / MDC_MODALITY_SLOW).
        let mut ctx = ctx.clone();
        for (suffix, modality) in [("_fast", "MDC_MODALITY_FAST"), ("_slow", "MDC_MODALITY_SLOW")] {
            if v.source.ends_with(suffix) {
                ctx.get_or_insert_with(Default::default).insert("modality".into(), modality.into());
            }
        }
        out.observations.push(Observation {
            code: field.code.clone(),
            val,
            unit: Unit {
                ucum: v.ucum.to_string(),
                mdc: field.unit.mdc.or_else(|| crate::units::by_ucum(v.ucum).map(|u| u.code)),
            },
            q: v.q,
            tdev: r.tdev,
            ctx,
        });
    }
    out
}

/// Values a device sends that its profile does not forward, reported once per connection (an info
/// event, so an operator sees them and can map them).
#[derive(Debug, Default)]
pub struct NotForwarded {
    seen: std::collections::BTreeSet<&'static str>,
}

impl NotForwarded {
    /// The `values-not-forwarded` event for names in `r` not reported before, if any.
    pub fn report(&mut self, r: &Readings) -> Option<Event> {
        let new: Vec<&'static str> = r.unmapped.iter().copied().filter(|n| self.seen.insert(n)).collect();
        (!new.is_empty()).then(|| {
            let text = format!(
                "the device sends {} that the profile maps to no code; they are not forwarded (add a [[field]] to forward them)",
                new.join(", ")
            );
            Event::new("values-not-forwarded", Severity::Info, text).with("values", new)
        })
    }
}

/// What a BLE session keeps between notifications, shared by the daemon and `profile test`: a
/// glucose measurement waiting for the context that follows it, and the PMD frame clock.
#[derive(Debug, Default)]
pub struct Assembler {
    waiting: Option<Readings>,
    clock: pmd::FrameClock,
}

/// What is ready after a reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    /// Readings to deliver (a measurement, joined to its context when one came).
    Ready(Readings),
    /// A context with no measurement waiting for it (reported, not delivered).
    Unmatched(Event),
}

impl Assembler {
    /// Takes a measurement or a context. A measurement whose context follows waits for it; one
    /// whose record `delivered` says was delivered before is passed over.
    pub fn reading(&mut self, r: Readings, delivered: impl Fn(u16) -> bool) -> Vec<Assembled> {
        if r.is_context {
            return match self.waiting.take() {
                Some(mut m) if m.record == r.record => {
                    m.join(r);
                    vec![Assembled::Ready(m)]
                }
                other => {
                    self.waiting = other;
                    let text = format!("a glucose context for record {:?} came without its measurement", r.record);
                    vec![Assembled::Unmatched(Event::new("context-unmatched", Severity::Info, text))]
                }
            };
        }
        let mut out: Vec<Assembled> = self.flush().map(Assembled::Ready).into_iter().collect();
        if r.record.is_some_and(delivered) {
            tracing::debug!(record = r.record, "record already delivered");
        } else if r.context_follows {
            self.waiting = Some(r);
        } else {
            out.push(Assembled::Ready(r));
        }
        out
    }

    /// The waiting measurement, if any (a control point answered, the link ended, the capture ended).
    pub fn flush(&mut self) -> Option<Readings> {
        self.waiting.take()
    }

    /// Puts a PMD frame on the stream's sample counter; true for the session's first frame.
    pub fn place(&mut self, frame: &mut WaveFrame, ts_ns: u64, rate: f64) -> bool {
        let first = self.clock.is_empty();
        frame.counter = Some(self.clock.place(ts_ns, frame.samples.len(), rate));
        first
    }
}
