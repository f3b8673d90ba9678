//! How the gateway reaches a device: a serial byte link ([`open`]) or a BLE device ([`ble`]).

mod backoff;
pub mod ble;
pub mod camera;
pub mod folder;
mod serial;

pub use backoff::Backoff;

use crate::config::DeviceTransport;
use crate::profile::SerialSettings;
use tokio::io::{AsyncRead, AsyncWrite};

/// An open byte link to a device.
pub trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// How long a device may take to accept what is written to it (an acknowledgement, a request)
/// before its link is given up and reopened: a device that stops reading never stalls the daemon,
/// nor its stop.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes all of `bytes` to the device, or fails when it has not taken them within
/// [`WRITE_TIMEOUT`].
pub async fn write_to(link: &mut (impl Link + ?Sized), bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    match tokio::time::timeout(WRITE_TIMEOUT, link.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the device took nothing written to it for {} s", WRITE_TIMEOUT.as_secs()),
        )),
    }
}

/// Opens the device's link.
pub fn open(transport: &DeviceTransport, settings: &SerialSettings) -> std::io::Result<Box<dyn Link>> {
    match transport {
        DeviceTransport::Serial { path, baud } => serial::open(path, *baud, settings)
            .map(|s| Box::new(s) as Box<dyn Link>)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        DeviceTransport::Ble { .. } => Err(std::io::Error::other("a BLE device has no byte link")),
        DeviceTransport::Folder { .. } | DeviceTransport::Camera { .. } => {
            Err(std::io::Error::other("an image device has no byte link"))
        }
    }
}

/// Names the transport in logs and spans.
pub fn kind(transport: &DeviceTransport) -> &'static str {
    match transport {
        DeviceTransport::Serial { .. } => "serial",
        DeviceTransport::Ble { .. } => "ble",
        DeviceTransport::Folder { .. } => "folder",
        DeviceTransport::Camera { .. } => "camera",
    }
}
