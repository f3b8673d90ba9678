//! An embedded MQTT broker (rumqttd) on a loopback port, for the demo. rumqttd's `start` blocks and
//! has no shutdown, so it runs on its own thread for the life of the process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, never one this process was given before (the system may hand
/// out a port it just handed out, and two brokers of one test run would then share it).
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no loopback port this process was not given before"))
}

/// Starts rumqttd on `127.0.0.1:port` and waits until it accepts connections.
pub fn start(port: u16) -> anyhow::Result<()> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "spokegate-demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 500
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text)?;
    std::thread::Builder::new().name("rumqttd".into()).spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        if let Err(e) = broker.start() {
            tracing::error!(error = %e, "embedded broker stopped");
        }
    })?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("embedded broker did not start on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The system hands out a port it handed out a moment ago (2,000 binds to port 0 here gave
    /// 140 to 250 repeats); two brokers or hubs of one test run must not share one.
    #[test]
    fn a_port_is_given_once() {
        let ports: Vec<u16> = (0..2000).map(|_| super::free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
