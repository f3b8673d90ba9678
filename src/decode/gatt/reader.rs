//! A bounds-checked little-endian reader over one notification.

use super::ieee11073::{float32, sfloat, Number};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct GattError(pub String);

impl GattError {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GattError> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
                GattError(format!("{what} missing: {} bytes, {} left", n, self.bytes.len() - self.pos))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, GattError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, GattError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn i16(&mut self, what: &str) -> Result<i16, GattError> {
        Ok(self.u16(what)? as i16)
    }

    pub fn u24(&mut self, what: &str) -> Result<u32, GattError> {
        let b = self.take(3, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, GattError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn sfloat(&mut self, what: &str) -> Result<Number, GattError> {
        Ok(sfloat(self.u16(what)?))
    }

    pub fn float(&mut self, what: &str) -> Result<Number, GattError> {
        Ok(float32(self.u32(what)?))
    }

    /// A Date Time (0x2A08): year (0 = unknown), month, day, hours, minutes, seconds. `None` when
    /// the year or the date is not known; an impossible date is an error.
    pub fn date_time(&mut self, what: &str) -> Result<Option<time::PrimitiveDateTime>, GattError> {
        Ok(self.date_time_parts(what)?.0)
    }

    /// A measurement's time stamp: the device time (µs, UTC) when it is known. When only the
    /// year is unknown (0) the month, day and time still go to `ctx.device_time_without_year`
    /// (`--MM-DDThh:mm:ss`, ISO 8601), so nothing the device said is dropped.
    pub fn device_time(&mut self, what: &str, out: &mut super::GattReading) -> Result<Option<i64>, GattError> {
        let (t, without_year) = self.date_time_parts(what)?;
        if let Some(text) = without_year {
            out.ctx("device_time_without_year", text);
        }
        Ok(t.map(micros))
    }

    fn date_time_parts(&mut self, what: &str) -> Result<(Option<time::PrimitiveDateTime>, Option<String>), GattError> {
        let year = self.u16(what)?;
        let b = self.take(5, what)?;
        if b[0] == 0 || b[1] == 0 {
            return Ok((None, None));
        }
        if year == 0 {
            let valid = b[0] <= 12 && b[1] <= 31 && b[2] < 24 && b[3] < 60 && b[4] < 60;
            let text = format!("--{:02}-{:02}T{:02}:{:02}:{:02}", b[0], b[1], b[2], b[3], b[4]);
            return Ok((None, valid.then_some(text)));
        }
        let bad =
            || GattError(format!("{what}: {year}-{}-{} {}:{}:{} is not a date and time", b[0], b[1], b[2], b[3], b[4]));
        let month = time::Month::try_from(b[0]).map_err(|_| bad())?;
        let date = time::Date::from_calendar_date(i32::from(year), month, b[1]).map_err(|_| bad())?;
        let t = time::Time::from_hms(b[2], b[3], b[4]).map_err(|_| bad())?;
        Ok((Some(time::PrimitiveDateTime::new(date, t)), None))
    }

    /// Bytes not read.
    pub fn rest(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Microseconds since the epoch of a device time taken as UTC.
pub fn micros(t: time::PrimitiveDateTime) -> i64 {
    (t.assume_utc().unix_timestamp_nanos() / 1000) as i64
}
