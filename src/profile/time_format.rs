//! The `time` crate's format descriptions (version 2), as profiles write them for a device's
//! clock and for `{now:...}` in a request.
//!
//! time 0.3.55 checks its own lexer with a debug assertion that some malformed descriptions trip
//! (`[o[[d]`; `fuzz/`'s profile_and_config found `[year repr:last_two[ [hour]:[minute]:[sec0Xd]`):
//! a build with debug assertions panics where a release build says "unclosed opening bracket". A
//! bad profile is refused with its place, not a panic, in either build, so the parse is held here
//! behind `catch_unwind` (in a debug build the panic's message is still printed first).

use time::format_description::OwnedFormatItem;

/// `format` parsed, or why it is not a format description.
pub fn time_format(format: &str) -> Result<OwnedFormatItem, String> {
    match std::panic::catch_unwind(|| time::format_description::parse_owned::<2>(format)) {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(_) => Err("not a format description the time library can read (a bracket out of place?)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_description_is_an_error_in_every_build() {
        assert!(time_format("[month]/[day]/[year repr:last_two] [hour]:[minute]:[second]").is_ok());
        for bad in
            ["[o[[d]", "[year repr:last_two[ [hour]:[minute]:[sec0Xd]", "[year repr:last_two[", "[nonsense]", "[day"]
        {
            assert!(time_format(bad).is_err(), "{bad}");
        }
    }
}
