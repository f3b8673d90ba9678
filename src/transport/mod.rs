//! How the gateway reaches a device: a serial byte link ([`open`]) or a BLE device ([`ble`]).

mod backoff;
pub mod ble;
mod serial;

pub use backoff::Backoff;

use crate::config::DeviceTransport;
use crate::profile::SerialSettings;
use tokio::io::{AsyncRead, AsyncWrite};

/// An open byte link to a device.
pub trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// Opens the device's link.
pub fn open(transport: &DeviceTransport, settings: &SerialSettings) -> std::io::Result<Box<dyn Link>> {
    match transport {
        DeviceTransport::Serial { path, baud } => {
            serial::open(path, *baud, settings).map(|s| Box::new(s) as Box<dyn Link>)
        }
        DeviceTransport::Ble { .. } => Err(std::io::Error::other("a BLE device has no byte link")),
    }
}

/// Names the transport in logs and spans.
pub fn kind(transport: &DeviceTransport) -> &'static str {
    match transport {
        DeviceTransport::Serial { .. } => "serial",
        DeviceTransport::Ble { .. } => "ble",
    }
}
