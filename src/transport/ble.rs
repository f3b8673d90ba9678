//! Bluetooth Low Energy with btleplug (BlueZ over D-Bus on Linux; `DBUS_SYSTEM_BUS_ADDRESS` picks
//! the bus). Finds a device by address, advertised name or service, connects, discovers, subscribes
//! to the characteristics a profile reads, and turns what happens into [`BleEvent`]s.

use btleplug::api::{
    BDAddr, Central, CentralEvent, CharPropFlags, Characteristic, Manager as _, Peripheral as _, ScanFilter,
    ValueNotification, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BleError {
    #[error("Bluetooth: {0}")]
    Btle(#[from] btleplug::Error),
    #[error("no Bluetooth adapter (is bluetoothd running and the adapter powered?)")]
    NoAdapter,
    #[error("{0} not found within {1} s")]
    NotFound(String, u64),
    #[error("the device has no characteristic {0}")]
    MissingCharacteristic(Uuid),
}

/// What identifies the device to connect to.
#[derive(Debug, Clone)]
pub struct BleTarget {
    pub address: Option<String>,
    pub name: Option<String>,
    pub service: Uuid,
}

impl std::fmt::Display for BleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.address, &self.name) {
            (Some(a), _) => write!(f, "BLE device {a}"),
            (None, Some(n)) => write!(f, "BLE device named {n:?}"),
            (None, None) => write!(f, "BLE device with service {}", self.service),
        }
    }
}

/// Something the device did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleEvent {
    Notification(Uuid, Vec<u8>),
    Disconnected,
}

/// A connected device with its subscriptions.
pub struct BleLink {
    adapter: Adapter,
    peripheral: Peripheral,
    notifications: Pin<Box<dyn Stream<Item = ValueNotification> + Send>>,
    events: Pin<Box<dyn Stream<Item = CentralEvent> + Send>>,
    characteristics: Vec<Characteristic>,
}

/// The first Bluetooth adapter.
pub async fn adapter() -> Result<Adapter, BleError> {
    let manager = Manager::new().await?;
    manager.adapters().await?.into_iter().next().ok_or(BleError::NoAdapter)
}

async fn matches(p: &Peripheral, target: &BleTarget) -> bool {
    let Ok(Some(props)) = p.properties().await else { return false };
    match (&target.address, &target.name) {
        (Some(a), _) => props.address.to_string().eq_ignore_ascii_case(a),
        (None, Some(n)) => props.local_name.as_deref() == Some(n.as_str()),
        (None, None) => props.services.contains(&target.service),
    }
}

impl BleLink {
    /// Scans for the target (up to `scan_for`), connects, discovers its services and subscribes to
    /// every characteristic in `subscribe` that notifies or indicates.
    pub async fn open(target: &BleTarget, subscribe: &[Uuid], scan_for: Duration) -> Result<BleLink, BleError> {
        let adapter = adapter().await?;
        let events = adapter.events().await?;
        let filter = match (&target.address, &target.name) {
            (None, None) => ScanFilter { services: vec![target.service] },
            _ => ScanFilter::default(),
        };
        adapter.start_scan(filter).await?;
        let started = Instant::now();
        let peripheral = loop {
            let mut found = None;
            for p in adapter.peripherals().await? {
                if matches(&p, target).await {
                    found = Some(p);
                    break;
                }
            }
            if let Some(p) = found {
                break p;
            }
            if started.elapsed() >= scan_for {
                let _ = adapter.stop_scan().await;
                return Err(BleError::NotFound(target.to_string(), scan_for.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = adapter.stop_scan().await;
        if !peripheral.is_connected().await? {
            peripheral.connect().await?;
        }
        peripheral.discover_services().await?;
        let notifications = peripheral.notifications().await?;
        let characteristics: Vec<Characteristic> = peripheral.characteristics().into_iter().collect();
        for uuid in subscribe {
            let c = characteristics.iter().find(|c| c.uuid == *uuid).ok_or(BleError::MissingCharacteristic(*uuid))?;
            if c.properties.intersects(CharPropFlags::NOTIFY | CharPropFlags::INDICATE) {
                peripheral.subscribe(c).await?;
            }
        }
        Ok(BleLink { adapter, peripheral, notifications, events, characteristics })
    }

    /// The next notification, or the device going away.
    pub async fn next(&mut self) -> BleEvent {
        let id = self.peripheral.id();
        loop {
            tokio::select! {
                n = self.notifications.next() => match n {
                    Some(n) => return BleEvent::Notification(n.uuid, n.value),
                    None => return BleEvent::Disconnected,
                },
                e = self.events.next() => match e {
                    Some(CentralEvent::DeviceDisconnected(d)) if d == id => return BleEvent::Disconnected,
                    Some(_) => {}
                    None => return BleEvent::Disconnected,
                },
            }
        }
    }

    /// Writes a control point (with response).
    pub async fn write(&mut self, uuid: Uuid, bytes: &[u8]) -> Result<(), BleError> {
        let c = self.characteristics.iter().find(|c| c.uuid == uuid).ok_or(BleError::MissingCharacteristic(uuid))?;
        self.peripheral.write(c, bytes, WriteType::WithResponse).await?;
        Ok(())
    }

    /// Reads a characteristic; `None` when the device has no such characteristic.
    pub async fn read(&mut self, uuid: Uuid) -> Option<Result<Vec<u8>, BleError>> {
        let c = self.characteristics.iter().find(|c| c.uuid == uuid)?;
        Some(self.peripheral.read(c).await.map_err(BleError::from))
    }

    pub fn address(&self) -> BDAddr {
        self.peripheral.address()
    }

    /// Disconnects (best effort).
    pub async fn close(self) {
        let _ = self.peripheral.disconnect().await;
        drop(self.adapter);
    }
}

/// A device seen by `spokegate ble scan`.
#[derive(Debug, Clone)]
pub struct Seen {
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
    pub services: Vec<Uuid>,
}

/// Scans for `duration` and lists what was seen.
pub async fn scan(duration: Duration) -> Result<Vec<Seen>, BleError> {
    let adapter = adapter().await?;
    adapter.start_scan(ScanFilter::default()).await?;
    tokio::time::sleep(duration).await;
    let mut out = Vec::new();
    for p in adapter.peripherals().await? {
        if let Ok(Some(props)) = p.properties().await {
            out.push(Seen {
                address: props.address.to_string(),
                name: props.local_name,
                rssi: props.rssi,
                services: props.services,
            });
        }
    }
    let _ = adapter.stop_scan().await;
    out.sort_by(|a, b| b.rssi.cmp(&a.rssi).then(a.address.cmp(&b.address)));
    Ok(out)
}
