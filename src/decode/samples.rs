//! Text sample rows, one per line, as low-cost ECG front ends (AD8232 class) print them:
//! integers separated by a delimiter (commas or white space by default), optionally with a
//! sample counter in one column.

use super::{DecodeError, WaveFrame};
use crate::profile::SamplesSpec;

pub fn decode(spec: &SamplesSpec, frame: &[u8]) -> Result<WaveFrame, DecodeError> {
    let line = std::str::from_utf8(frame).map_err(|_| DecodeError::new("samples-unparseable", "line is not text"))?;
    let cols: Vec<&str> = match spec.delimiter {
        Some(d) => line.split(d).map(str::trim).collect(),
        None => line.split(|c: char| c == ',' || c.is_whitespace()).filter(|c| !c.is_empty()).collect(),
    };
    let int = |i: usize| -> Result<i64, DecodeError> {
        let text = cols.get(i).ok_or_else(|| {
            DecodeError::new(
                "samples-unparseable",
                format!("line has {} columns, column {} is missing", cols.len(), i + 1),
            )
        })?;
        text.parse::<i64>().map_err(|_| {
            DecodeError::new("samples-unparseable", format!("column {} `{}` is not an integer", i + 1, clip(text)))
        })
    };
    let counter = match spec.counter_column {
        Some(c) => Some(
            u64::try_from(int(c)?)
                .map_err(|_| DecodeError::new("samples-unparseable", "the sample counter is negative"))?,
        ),
        None => None,
    };
    let mut samples = Vec::with_capacity(spec.sources.0.len());
    for &s in &spec.sources.0 {
        let v = int(s)?;
        samples.push(i32::try_from(v).map_err(|_| {
            DecodeError::new("sample-out-of-range", format!("column {} ({v}) does not fit 32 bits", s + 1))
        })?);
    }
    Ok(WaveFrame { counter, samples })
}

fn clip(s: &str) -> String {
    s.chars().take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SampleSources;

    fn spec(delimiter: Option<char>, counter: Option<usize>, sources: &[usize]) -> SamplesSpec {
        SamplesSpec { delimiter, counter_column: counter, sources: SampleSources(sources.to_vec()) }
    }

    #[test]
    fn rows_with_and_without_counters() {
        let s = spec(None, Some(0), &[1, 2]);
        assert_eq!(decode(&s, b"17, -119 -55").unwrap(), WaveFrame { counter: Some(17), samples: vec![-119, -55] });
        let single = spec(None, None, &[0]);
        assert_eq!(decode(&single, b"512").unwrap(), WaveFrame { counter: None, samples: vec![512] });
        let tabbed = spec(Some('\t'), None, &[1]);
        assert_eq!(decode(&tabbed, b"a\t-3").unwrap().samples, [-3]);
    }

    #[test]
    fn broken_rows_are_refused() {
        let s = spec(None, Some(0), &[1, 2]);
        for bad in [&b"17,4"[..], b"17,4,x", b"-1,2,3", b"1,2,99999999999", b"\xff\xfe", b""] {
            assert!(decode(&s, bad).is_err(), "{bad:?}");
        }
    }
}
