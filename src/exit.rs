//! Process exit codes, after BSD `sysexits.h`, so that systemd and operators' scripts can tell a bad
//! configuration (do not restart) from a transient failure (restart).

/// Successful termination.
pub const OK: i32 = 0;
/// The command was used incorrectly (bad arguments).
pub const USAGE: i32 = 64;
/// The input data was incorrect (a capture that cannot be read, a message that does not verify).
pub const DATAERR: i32 = 65;
/// An input file did not exist or was not readable.
pub const NOINPUT: i32 = 66;
/// The named user does not exist.
pub const NOUSER: i32 = 67;
/// A service is unavailable (the broker cannot be reached).
pub const UNAVAILABLE: i32 = 69;
/// An internal software error.
pub const SOFTWARE: i32 = 70;
/// A system error (cannot create a pseudo-terminal, a thread).
pub const OSERR: i32 = 71;
/// Cannot create an output file.
pub const CANTCREAT: i32 = 73;
/// An I/O error.
pub const IOERR: i32 = 74;
/// A temporary failure: try again (no answer in time).
pub const TEMPFAIL: i32 = 75;
/// Permission denied (e.g. a private key readable by others).
pub const NOPERM: i32 = 77;
/// Something was found in an unconfigured or misconfigured state.
pub const CONFIG: i32 = 78;
