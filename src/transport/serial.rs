//! USB-serial devices through `tokio-serial`. The port is opened exclusively (TIOCEXCL and a lock),
//! so two daemons never read the same meter.

use crate::profile::{FlowControl, Parity, SerialSettings};
use std::path::Path;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

pub fn open(path: &Path, baud: u32, s: &SerialSettings) -> std::io::Result<SerialStream> {
    let data_bits = match s.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let stop_bits = if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One };
    let flow = match s.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    let port = tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow)
        .open_native_async()?;
    Ok(port)
}
