//! Text devices: one reading per line, as delimited columns or KEY=VALUE pairs, mapped to codes and
//! units by the profile's `[[field]]` tables (value = raw * scale + offset, range-checked).

use super::{DecodeError, Decoded};
use crate::clock::to_micros;
use crate::model::{Event, Observation, Severity};
use crate::profile::{LineChecksum, TextFormat, TextSpec};

pub fn decode(spec: &TextSpec, frame: &[u8]) -> Result<Decoded, DecodeError> {
    let line = std::str::from_utf8(frame)
        .map_err(|_| DecodeError::new("line-not-text", format!("{}-byte line is not UTF-8 text", frame.len())))?;
    let line = match spec.checksum {
        Some(LineChecksum::Sum16Hex) => verify_sum16_hex(line)?,
        None => line,
    };
    let line = match &spec.prefix {
        Some(p) => line
            .strip_prefix(p.as_str())
            .ok_or_else(|| DecodeError::new("line-unrecognised", format!("line does not start with `{p}`")))?,
        None => line,
    };
    let values: Vec<(&str, &str)> = match spec.format {
        TextFormat::Csv { delimiter } => {
            let cols = split_csv(line, delimiter);
            if spec.skip_column_counts.contains(&cols.len()) {
                return Ok(Decoded::default());
            }
            if cols.len() != spec.columns.len() {
                return Err(DecodeError::new(
                    "line-unrecognised",
                    format!("line has {} columns, the profile expects {}", cols.len(), spec.columns.len()),
                ));
            }
            spec.columns.iter().map(String::as_str).zip(cols).collect()
        }
        TextFormat::KeyValue { delimiter, assign } => split_pairs(line, delimiter, assign)?,
    };
    let lookup = |name: &str| values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);

    let mut out = Decoded::default();
    for field in &spec.fields {
        let Some(raw) = lookup(&field.source) else {
            continue;
        };
        let number = match raw.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => n,
            _ => {
                out.problems.push(
                    Event::new("value-invalid", Severity::Warn, format!("`{}` is not a number", field.source))
                        .with("field", field.source.as_str())
                        .with("raw", raw.trim()),
                );
                continue;
            }
        };
        let value = match super::apply_field(field, number, raw.trim()) {
            Ok(v) => v,
            Err(e) => {
                out.problems.push(e);
                continue;
            }
        };
        out.observations.push(Observation::measured(field.code.clone(), value, field.unit.clone()));
    }
    if out.observations.is_empty() && out.problems.is_empty() {
        return Err(DecodeError::new("line-unrecognised", "no field of the profile in the line"));
    }
    if let Some(dt) = &spec.device_time {
        let parts: Option<Vec<&str>> = dt.from.iter().map(|c| lookup(c).map(str::trim)).collect();
        let parsed = parts
            .and_then(|p| parse_device_time(&p.join(" "), &dt.format))
            .map(|t| to_micros(t.assume_offset(dt.utc_offset)));
        match parsed {
            Some(t) => out.tdev = Some(t),
            None => out.problems.push(Event::new(
                "device-time-invalid",
                Severity::Info,
                "the device's date and time could not be read; gateway time only",
            )),
        }
    }
    Ok(out)
}

/// Parses a device's date and time. A two-digit year (`[year repr:last_two]`, as meters print it)
/// is taken to be in 2000-2099.
pub(crate) fn parse_device_time(
    text: &str,
    format: &time::format_description::OwnedFormatItem,
) -> Option<time::PrimitiveDateTime> {
    let mut parsed = time::parsing::Parsed::new();
    let rest = parsed.parse_item(text.as_bytes(), format).ok()?;
    if !rest.is_empty() {
        return None;
    }
    if parsed.year().is_none() {
        parsed = parsed.with_year(2000 + i32::from(parsed.year_last_two()?))?;
    }
    Some(time::PrimitiveDateTime::new(time::Date::try_from(parsed).ok()?, time::Time::try_from(parsed).ok()?))
}

/// The LifeScan sum-16: the 16-bit sum of the bytes (replies check it, requests carry it).
pub fn sum16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)))
}

/// Checks and strips a trailing ` XXXX` sum-16 checksum.
pub(crate) fn verify_sum16_hex(line: &str) -> Result<&str, DecodeError> {
    let (body, check) =
        line.rsplit_once(' ').ok_or_else(|| DecodeError::new("checksum-missing", "line has no trailing checksum"))?;
    if check.len() != 4 {
        return Err(DecodeError::new("checksum-missing", "line has no 4-digit trailing checksum"));
    }
    let stated = u16::from_str_radix(check, 16)
        .map_err(|_| DecodeError::new("checksum-missing", "trailing checksum is not hexadecimal"))?;
    let computed = sum16(body.as_bytes());
    if stated != computed {
        return Err(DecodeError::new(
            "checksum-mismatch",
            format!("line checksum {stated:04X} does not match the computed {computed:04X}"),
        ));
    }
    Ok(body)
}

/// Splits delimited columns; a column in double quotes may hold the delimiter. White space around
/// columns and the quotes are removed.
pub(crate) fn split_csv(line: &str, delimiter: char) -> Vec<&str> {
    let mut cols = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == delimiter && !quoted {
            cols.push(unquote(&line[start..i]));
            start = i + c.len_utf8();
        }
    }
    cols.push(unquote(&line[start..]));
    cols
}

fn unquote(col: &str) -> &str {
    let t = col.trim();
    t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t)
}

fn split_pairs(line: &str, delimiter: Option<char>, assign: char) -> Result<Vec<(&str, &str)>, DecodeError> {
    let tokens: Vec<&str> = match delimiter {
        Some(d) => line.split(d).map(str::trim).filter(|t| !t.is_empty()).collect(),
        None => line.split_whitespace().collect(),
    };
    tokens
        .into_iter()
        .map(|t| {
            t.split_once(assign)
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| DecodeError::new("line-unrecognised", format!("`{t}` is not KEY{assign}VALUE")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{DecoderSpec, ProfileRegistry};

    fn spec(id: &str) -> TextSpec {
        match &ProfileRegistry::builtin().unwrap().get(id).unwrap().decoder {
            DecoderSpec::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        }
    }

    // Lines from the OneTouch Ultra 2 driver's documentation (tidepool-org/uploader,
    // lib/drivers/onetouch/oneTouchUltra2.js), see tests/fixtures/SOURCES.md.
    const HEADER: &str = "P 003,\"GMF600DCY\",\"MG/DL \" 05A6";
    const READING: &str = "P \"SAT\",\"03/21/15\",\"16:45:24   \",\"  081 \",\"N\",\"03\", 00 09B6";

    #[test]
    fn sum16_checksums_of_the_documented_dump_lines_verify() {
        assert!(verify_sum16_hex(HEADER).is_ok());
        assert!(verify_sum16_hex(READING).is_ok());
    }

    #[test]
    fn the_dump_header_is_passed_over_and_a_reading_line_decoded() {
        let s = spec("onetouch-ultra2");
        assert_eq!(decode(&s, HEADER.as_bytes()).unwrap(), Decoded::default());
        let d = decode(&s, READING.as_bytes()).unwrap();
        assert_eq!(d.observations.len(), 1);
        assert_eq!(d.observations[0].val, Some(81.0));
        assert_eq!(d.observations[0].code.mdc, 160184);
        assert_eq!(d.observations[0].unit.ucum, "mg/dL");
        // 2015-03-21 16:45:24 on the meter's clock, which the profile says runs at +05:30.
        assert_eq!(d.tdev, Some((1_426_956_324 - 5 * 3600 - 30 * 60) * 1_000_000));
        assert!(d.problems.is_empty());
    }

    #[test]
    fn a_corrupted_byte_fails_the_checksum() {
        let bad = READING.replace("081", "091");
        let err = decode(&spec("onetouch-ultra2"), bad.as_bytes()).unwrap_err();
        assert_eq!(err.code, "checksum-mismatch");
    }

    #[test]
    fn key_value_lines_are_scaled_and_range_checked() {
        let s = spec("vitals-kv");
        let d = decode(&s, b"SYS=120 DIA=80 TEMP=367 SPO2=140 PR=x").unwrap();
        let vals: Vec<(u32, Option<f64>)> = d.observations.iter().map(|o| (o.code.mdc, o.val)).collect();
        assert_eq!(vals, [(150021, Some(120.0)), (150022, Some(80.0)), (150364, Some(36.7))]);
        let codes: Vec<&str> = d.problems.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["value-invalid", "value-out-of-range"]);
    }

    #[test]
    fn a_line_with_none_of_the_fields_is_an_error() {
        assert_eq!(decode(&spec("vitals-kv"), b"FOO=1").unwrap_err().code, "line-unrecognised");
        assert_eq!(decode(&spec("vitals-kv"), b"garbage").unwrap_err().code, "line-unrecognised");
        assert_eq!(decode(&spec("vitals-kv"), &[0xff, 0xfe]).unwrap_err().code, "line-not-text");
    }
}
