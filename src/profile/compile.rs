//! Second stage of reading a profile: every named check, all problems reported at once.

use super::raw::{RawDecoder, RawField, RawProfile, RawSerial};
use super::{
    AstmSpec, DecoderSpec, DeviceTimeSpec, FieldMap, FlowControl, FramingSpec, Hl7Spec, ImageSpec, LineChecksum,
    MetricInfo, Parity, Profile, SerialSettings, TextFormat, TextSpec,
};
use crate::diagnostic::{read_source, Diagnostics, SourceFile};
use crate::ids::is_valid_id;
use crate::model::{Code, Unit};
use std::collections::HashMap;
use std::path::Path;
use toml::Spanned;

/// Largest frame or line a profile may allow (1 MiB).
pub const MAX_FRAME_LIMIT: usize = 1 << 20;

/// Reads and compiles one profile file.
pub fn load_file(path: &Path) -> Result<Profile, Diagnostics> {
    let text = read_source(path)?;
    compile(path, &text)
}

/// Parses and checks a profile's text. `path` names it in diagnostics.
pub fn compile(path: &Path, text: &str) -> Result<Profile, Diagnostics> {
    let src = SourceFile::new(path, text);
    let raw: RawProfile = toml::from_str(text).map_err(|e| Diagnostics(vec![src.from_toml_error(&e)]))?;
    let mut checker = Checker { src: &src, problems: Diagnostics::default() };
    let profile = checker.profile(raw);
    checker.problems.into_result(()).and(profile.ok_or_else(Diagnostics::default))
}

pub(super) struct Checker<'a> {
    pub(super) src: &'a SourceFile<'a>,
    pub(super) problems: Diagnostics,
}

impl Checker<'_> {
    pub(super) fn problem<T>(&mut self, at: &Spanned<T>, item: &str, message: impl Into<String>) {
        self.problems.0.push(self.src.at(at.span(), item, message));
    }

    fn profile(&mut self, raw: RawProfile) -> Option<Profile> {
        if !is_valid_id(raw.id.get_ref()) {
            self.problem(&raw.id, "id", "must match [a-z0-9][a-z0-9-]{0,62}");
        }
        let serial = self.serial(&raw.serial);
        let ble = self.ble(&raw);
        let framing = self.framing(&raw);
        let decoder = self.decoder(&raw);
        let wave = self.wave(&raw, decoder.as_ref());
        let dialogue = self.dialogue(&raw);
        if let (Some(c), false) = (&raw.camera, raw.decoder.kind.get_ref() == "image") {
            self.problem(c, "camera", "a [camera] table belongs to image devices (decoder.kind = \"image\")");
        }
        Some(Profile {
            id: raw.id.into_inner(),
            description: raw.description,
            source: self.src.path.to_path_buf(),
            serial,
            ble: ble?,
            framing: framing?,
            decoder: decoder?,
            wave: wave?,
            dialogue: dialogue?,
        })
    }

    fn serial(&mut self, raw: &RawSerial) -> SerialSettings {
        let mut s = SerialSettings::default();
        if let Some(baud) = &raw.baud {
            if *baud.get_ref() == 0 {
                self.problem(baud, "serial.baud", "must be a positive bit rate, e.g. 9600");
            }
            s.baud = *baud.get_ref();
        }
        if let Some(bits) = &raw.data_bits {
            if !(5..=8).contains(bits.get_ref()) {
                self.problem(bits, "serial.data_bits", "must be 5, 6, 7 or 8");
            }
            s.data_bits = *bits.get_ref();
        }
        if let Some(stop) = &raw.stop_bits {
            if !(1..=2).contains(stop.get_ref()) {
                self.problem(stop, "serial.stop_bits", "must be 1 or 2");
            }
            s.stop_bits = *stop.get_ref();
        }
        if let Some(parity) = &raw.parity {
            s.parity = match parity.get_ref().as_str() {
                "none" => Parity::None,
                "odd" => Parity::Odd,
                "even" => Parity::Even,
                other => {
                    self.problem(parity, "serial.parity", format!("`{other}` is not one of none, odd, even"));
                    Parity::None
                }
            };
        }
        if let Some(flow) = &raw.flow_control {
            s.flow_control = match flow.get_ref().as_str() {
                "none" => FlowControl::None,
                "software" => FlowControl::Software,
                "hardware" => FlowControl::Hardware,
                other => {
                    self.problem(
                        flow,
                        "serial.flow_control",
                        format!("`{other}` is not one of none, software, hardware"),
                    );
                    FlowControl::None
                }
            };
        }
        s
    }

    fn framing(&mut self, raw: &RawProfile) -> Option<FramingSpec> {
        let is_ble = matches!(raw.decoder.kind.get_ref().as_str(), "gatt" | "polar-pmd-ecg");
        let is_image = raw.decoder.kind.get_ref() == "image";
        let framing = match (&raw.framing, is_ble || is_image) {
            (None, true) => return Some(FramingSpec::Notification),
            (Some(f), true) if is_image => {
                self.problem(&f.kind, "framing", "image devices have no framing: each file or still is one image");
                return None;
            }
            (Some(f), true) => {
                self.problem(&f.kind, "framing", "BLE decoders have no framing: each notification is one frame");
                return None;
            }
            (None, false) => {
                self.problem(&raw.decoder.kind, "framing", "a serial device needs a [framing] table (kind = ...)");
                return None;
            }
            (Some(f), false) => f,
        };
        let max_len = match &framing.max_len {
            Some(m) if *m.get_ref() == 0 || *m.get_ref() > MAX_FRAME_LIMIT => {
                self.problem(m, "framing.max_len", format!("must be between 1 and {MAX_FRAME_LIMIT} bytes"));
                None
            }
            Some(m) => Some(*m.get_ref()),
            None => None,
        };
        match framing.kind.get_ref().as_str() {
            "mllp" => Some(FramingSpec::Mllp { max_len: max_len.unwrap_or(64 * 1024) }),
            "line" => Some(FramingSpec::Line { max_len: max_len.unwrap_or(1024) }),
            "fixed" => self.fixed_framing(framing),
            "sync-length" => self.sync_length_framing(framing, max_len.unwrap_or(4096)),
            "astm-e1381" => Some(FramingSpec::AstmE1381 { max_len: max_len.unwrap_or(64 * 1024) }),
            other => {
                self.problem(
                    &framing.kind,
                    "framing.kind",
                    format!("unknown framing `{other}` (known: mllp, line, fixed, sync-length, astm-e1381)"),
                );
                None
            }
        }
    }

    fn decoder(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        let d = &raw.decoder;
        match d.kind.get_ref().as_str() {
            "hl7-oru" => Some(DecoderSpec::Hl7Oru(self.hl7(raw))),
            "text" => self.text(d, &raw.fields).map(DecoderSpec::Text),
            "openbci-cyton" => self.cyton(raw),
            "samples" => self.samples(raw),
            "pcm" => self.pcm(raw),
            "gatt" => self.gatt(raw),
            "polar-pmd-ecg" => self.pmd(raw),
            "astm-e1394" => self.astm(raw).map(DecoderSpec::Astm),
            "image" => Some(DecoderSpec::Image(self.image(raw))),
            other => {
                self.problem(
                    &d.kind,
                    "decoder.kind",
                    format!(
                        "unknown decoder `{other}` (known: hl7-oru, text, openbci-cyton, samples, pcm, gatt, polar-pmd-ecg, astm-e1394, image)"
                    ),
                );
                None
            }
        }
    }

    fn image(&mut self, raw: &RawProfile) -> ImageSpec {
        let mut spec = ImageSpec::default();
        let Some(c) = &raw.camera else { return spec };
        let c = c.get_ref();
        if let Some(w) = &c.warmup_frames {
            if *w.get_ref() > 300 {
                self.problem(w, "camera.warmup_frames", "at most 300 frames (10 s at 30 frames/s)");
            }
            spec.warmup_frames = *w.get_ref();
        }
        if let Some(t) = &c.timeout_ms {
            if !(100..=120_000).contains(t.get_ref()) {
                self.problem(t, "camera.timeout_ms", "must be between 100 and 120000 ms");
            }
            spec.timeout = std::time::Duration::from_millis(*t.get_ref());
        }
        match (&c.width, &c.height) {
            (Some(w), Some(h)) if *w.get_ref() > 0 && *h.get_ref() > 0 => {
                spec.size = Some((*w.get_ref(), *h.get_ref()))
            }
            (Some(w), Some(_)) => self.problem(w, "camera.width", "width and height must be positive"),
            (Some(w), None) => self.problem(w, "camera.height", "give both width and height, or neither"),
            (None, Some(h)) => self.problem(h, "camera.width", "give both width and height, or neither"),
            (None, None) => {}
        }
        spec
    }

    fn hl7(&mut self, raw: &RawProfile) -> Hl7Spec {
        let mut units = HashMap::new();
        for (i, u) in raw.units.iter().enumerate() {
            self.ucum(&u.ucum, &format!("unit[{i}].ucum"));
            units.insert(u.mdc, u.ucum.get_ref().clone());
        }
        let mut metrics = HashMap::new();
        for (i, m) in raw.metrics.iter().enumerate() {
            if let Some(loinc) = &m.loinc {
                self.loinc(loinc, &format!("metric[{i}].loinc"));
            }
            let info = MetricInfo { name: m.name.clone(), loinc: m.loinc.as_ref().map(|l| l.get_ref().clone()) };
            if metrics.insert(*m.mdc.get_ref(), info).is_some() {
                self.problem(&m.mdc, &format!("metric[{i}].mdc"), "this MDC code is listed twice");
            }
        }
        if let Some(f) = raw.fields.first() {
            self.problem(
                &f.source,
                "field[0]",
                "`field` tables belong to text decoders; hl7-oru uses `metric` and `unit`",
            );
        }
        Hl7Spec { ack: raw.decoder.ack.unwrap_or(true), units, metrics }
    }

    fn single_char(&mut self, value: &Option<Spanned<String>>, item: &str) -> Option<char> {
        let v = value.as_ref()?;
        let mut chars = v.get_ref().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => {
                self.problem(v, item, "must be exactly one character");
                None
            }
        }
    }

    fn text(&mut self, d: &RawDecoder, fields: &[RawField]) -> Option<TextSpec> {
        let delimiter = self.single_char(&d.delimiter, "decoder.delimiter");
        let format = match d.format.as_ref().map(|f| f.get_ref().as_str()) {
            Some("csv") => TextFormat::Csv { delimiter: delimiter.unwrap_or(',') },
            Some("key-value") => {
                TextFormat::KeyValue { delimiter, assign: self.single_char(&d.assign, "decoder.assign").unwrap_or('=') }
            }
            Some(other) => {
                let at = d.format.as_ref()?;
                self.problem(at, "decoder.format", format!("unknown text format `{other}` (known: csv, key-value)"));
                return None;
            }
            None => {
                self.problem(&d.kind, "decoder.format", "a text decoder needs `format = \"csv\"` or `\"key-value\"`");
                return None;
            }
        };
        let checksum = match &d.checksum {
            Some(c) if c.get_ref() == "sum16-hex" => Some(LineChecksum::Sum16Hex),
            Some(c) => {
                self.problem(c, "decoder.checksum", format!("unknown checksum `{}` (known: sum16-hex)", c.get_ref()));
                None
            }
            None => None,
        };
        let columns: Vec<String> = d.columns.iter().map(|c| c.get_ref().clone()).collect();
        let is_csv = matches!(format, TextFormat::Csv { .. });
        if is_csv && columns.is_empty() {
            self.problem(&d.kind, "decoder.columns", "a csv decoder needs the list of its column names");
        }
        for (i, c) in d.columns.iter().enumerate() {
            if d.columns[..i].iter().any(|p| p.get_ref() == c.get_ref()) {
                self.problem(c, &format!("decoder.columns[{i}]"), format!("column `{}` is named twice", c.get_ref()));
            }
        }
        let known = |name: &str| !is_csv || columns.iter().any(|c| c == name);
        let device_time = d.device_time.as_ref().and_then(|t| {
            for (i, f) in t.from.iter().enumerate() {
                if !known(f.get_ref()) {
                    self.problem(f, &format!("decoder.device_time.from[{i}]"), format!("no column `{}`", f.get_ref()));
                }
            }
            let format = match super::time_format(t.format.get_ref()) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.problem(
                        &t.format,
                        "decoder.device_time.format",
                        format!("not a time format description: {e}"),
                    );
                    None
                }
            };
            let utc_offset = self.utc_offset(&t.utc_offset, "decoder.device_time.utc_offset");
            Some(DeviceTimeSpec {
                from: t.from.iter().map(|f| f.get_ref().clone()).collect(),
                format: format?,
                utc_offset,
            })
        });
        if fields.is_empty() {
            self.problem(&d.kind, "field", "a text decoder needs at least one [[field]] mapping a value to a code");
        }
        let maps = self.field_maps(fields, |name| known(name), "no column `{}` in decoder.columns", true);
        Some(TextSpec {
            format,
            prefix: d.prefix.clone(),
            checksum,
            columns,
            skip_column_counts: d.skip_column_counts.clone(),
            device_time,
            fields: maps,
        })
    }

    /// `+05:30`: a device clock's offset from UTC (UTC when absent).
    pub(super) fn utc_offset(&mut self, value: &Option<Spanned<String>>, item: &str) -> time::UtcOffset {
        let Some(o) = value else { return time::UtcOffset::UTC };
        let fmt = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        time::UtcOffset::parse(o.get_ref(), &fmt).unwrap_or_else(|_| {
            self.problem(o, item, "must look like +05:30 or -03:00");
            time::UtcOffset::UTC
        })
    }

    /// `astm-e1394`: results mapped by test id and unit.
    fn astm(&mut self, raw: &RawProfile) -> Option<AstmSpec> {
        let d = &raw.decoder;
        if !matches!(raw.framing.as_ref().map(|f| f.kind.get_ref().as_str()), Some("astm-e1381")) {
            self.problem(&d.kind, "framing.kind", "the astm-e1394 decoder reads messages from `astm-e1381` framing");
        }
        let time_field = match &d.time_field {
            Some(t) if !(2..=20).contains(t.get_ref()) => {
                self.problem(t, "decoder.time_field", "must be an R record field number, 2..20 (E1394: 13)");
                13
            }
            Some(t) => *t.get_ref(),
            None => 13,
        };
        let mut units = HashMap::new();
        if let Some(u) = &d.units {
            for (text, ucum) in u.get_ref() {
                if ucum.is_empty() || !ucum.bytes().all(|b| b.is_ascii_graphic()) {
                    self.problem(u, &format!("decoder.units.\"{text}\""), format!("`{ucum}` is not a UCUM unit"));
                }
                units.insert(text.clone(), ucum.clone());
            }
        }
        if raw.fields.is_empty() {
            self.problem(
                &d.kind,
                "field",
                "an astm-e1394 decoder needs at least one [[field]] mapping a test to a code",
            );
        }
        let fields = self.field_maps(&raw.fields, |_| true, "", true);
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|p| p.source == f.source && p.unit.ucum == f.unit.ucum) {
                self.problem(
                    &raw.fields[i].source,
                    &format!("field[{i}].source"),
                    format!("test `{}` in {} is mapped twice", f.source, f.unit.ucum),
                );
            }
        }
        if let Some(q) = &d.fetch_query {
            if !q.get_ref().starts_with("Q|") || !q.get_ref().bytes().all(|b| (0x20..0x7f).contains(&b)) {
                self.problem(q, "decoder.fetch_query", "must be one E1394 Q record in printable ASCII (`Q|1|...`)");
            }
        }
        Some(AstmSpec {
            fetch_query: d.fetch_query.as_ref().map(|q| q.get_ref().clone()),
            time_field,
            utc_offset: self.utc_offset(&d.utc_offset, "decoder.utc_offset"),
            decimal_comma: d.decimal_comma.unwrap_or(false),
            units,
            fields,
        })
    }

    /// `[[field]]` tables: each value's source, code, unit, scale and range. `known` says whether
    /// a source exists (`unknown` names the problem, `{}` the source); `unit_required` for text.
    pub(super) fn field_maps(
        &mut self,
        fields: &[RawField],
        known: impl Fn(&str) -> bool,
        unknown: &str,
        unit_required: bool,
    ) -> Vec<FieldMap> {
        let mut maps = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let item = |k: &str| format!("field[{i}].{k}");
            if !known(f.source.get_ref()) {
                self.problem(&f.source, &item("source"), unknown.replace("{}", f.source.get_ref()));
            }
            // Without `ucum`, the built-in MDC unit table gives it from `unit_mdc`.
            let from_table = f.unit_mdc.and_then(crate::units::by_code).map(|u| u.ucum.to_string());
            match (&f.ucum, f.unit_mdc) {
                (Some(u), _) => self.ucum(u, &item("ucum")),
                (None, Some(code)) if from_table.is_none() => self.problem(
                    &f.source,
                    &item("unit_mdc"),
                    format!("MDC unit {code} is not in the built-in MDC unit table: give its `ucum`"),
                ),
                (None, None) if unit_required => self.problem(
                    &f.source,
                    &item("ucum"),
                    "a text field needs its unit: `ucum`, or `unit_mdc` from the MDC unit table",
                ),
                _ => {}
            }
            if let Some(l) = &f.loinc {
                self.loinc(l, &item("loinc"));
            }
            if let Some(s) = &f.scale {
                if !s.get_ref().is_finite() || *s.get_ref() == 0.0 {
                    self.problem(s, &item("scale"), "must be a finite, non-zero number");
                }
            }
            if let (Some(min), Some(max)) = (f.min, &f.max) {
                if min > *max.get_ref() {
                    self.problem(max, &item("max"), format!("is below min ({min})"));
                }
            }
            maps.push(FieldMap {
                source: f.source.get_ref().clone(),
                code: Code { mdc: f.mdc, loinc: f.loinc.as_ref().map(|l| l.get_ref().clone()), name: f.name.clone() },
                unit: Unit {
                    ucum: f.ucum.as_ref().map(|u| u.get_ref().clone()).or(from_table).unwrap_or_default(),
                    mdc: f
                        .unit_mdc
                        .or_else(|| f.ucum.as_ref().and_then(|u| crate::units::by_ucum(u.get_ref())).map(|u| u.code)),
                },
                scale: f.scale.as_ref().map(|s| *s.get_ref()).unwrap_or(1.0),
                offset: f.offset.unwrap_or(0.0),
                min: f.min,
                max: f.max.as_ref().map(|m| *m.get_ref()),
            });
        }
        maps
    }

    /// A UCUM unit: printable ASCII, no spaces (the full UCUM grammar is the hub's business).
    pub(super) fn ucum(&mut self, value: &Spanned<String>, item: &str) {
        let v = value.get_ref();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            self.problem(value, item, format!("`{v}` is not a UCUM unit (printable ASCII, no spaces; `1` for none)"));
        }
    }

    /// A LOINC code: digits, a dash, and the mod-10 check digit.
    fn loinc(&mut self, value: &Spanned<String>, item: &str) {
        if !is_valid_loinc(value.get_ref()) {
            self.problem(
                value,
                item,
                format!("`{}` is not a LOINC code (NNNN-C with a valid check digit)", value.get_ref()),
            );
        }
    }
}

/// Checks the form and the Mod 10 check digit of a LOINC code (LOINC Users' Guide, appendix).
pub fn is_valid_loinc(code: &str) -> bool {
    let Some((num, check)) = code.split_once('-') else {
        return false;
    };
    if num.is_empty() || num.len() > 7 || check.len() != 1 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = num.bytes().map(|b| u32::from(b - b'0')).collect();
    // Double every other digit starting from the rightmost, sum the digits of the results.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    let expected = (10 - sum % 10) % 10;
    check.parse::<u32>().map(|c| c == expected).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loinc_check_digits_of_published_codes_are_accepted() {
        // Codes published by LOINC for blood pressure, heart rate, glucose.
        for code in ["8480-6", "8462-4", "8478-0", "8867-4", "59408-5", "8310-5", "41653-7", "1554-5"] {
            assert!(is_valid_loinc(code), "{code}");
        }
    }

    #[test]
    fn a_loinc_code_with_a_wrong_check_digit_is_refused() {
        for code in ["8480-5", "8480", "84a0-6", "-6", "8480-66"] {
            assert!(!is_valid_loinc(code), "{code}");
        }
    }
}
