//! An embedded MQTT broker (rumqttd) on a loopback port, for the demo. rumqttd's `start` blocks and
//! has no shutdown, so it runs on its own thread for the life of the process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
