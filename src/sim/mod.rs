//! Simulated peripherals and an embedded broker, for `spokegate demo`, tests and benchmarks.
//! A simulated device is the far end of a real pseudo-terminal: the daemon opens its path exactly as
//! it opens a USB-serial adapter, so the demo exercises the real serial code.

pub mod astm;
pub mod ble_mock;
pub mod broker;
pub mod camera;
pub mod mosquitto;
pub mod onetouch;
pub mod proc_stats;
mod pty;
pub mod recordings;
pub mod waves;

pub use pty::{PtyDevice, PtyPeer, PtyReader, PtyWriter};

/// A child process (broker, bus, mock, gateway) that is killed and reaped when dropped, even when
/// a test fails half-way.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
