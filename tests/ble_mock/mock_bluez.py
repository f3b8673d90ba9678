#!/usr/bin/env python3
"""A mock BlueZ (org.bluez on a private D-Bus) for spokegate's BLE tests.

It exports what btleplug reads from the real bluetoothd: an ObjectManager at /, an Adapter1 at
/org/bluez/hci0, one Device1 per scenario device, and -- once a device is connected -- its
GattService1 and GattCharacteristic1 objects (found by D-Bus introspection). Notifications are
PropertiesChanged signals of a characteristic's Value, as BlueZ sends them.

Scenario (JSON): {"devices": [{"kind": "glucose" | "heart_rate" | "pmd", "address", "name",
"service", ...}]}
  glucose:    "records": [{"seq", "measurement": hex, "context": hex | null}],
              "current_time": [y, mo, d, h, mi, s] (a Current Time characteristic, 0x2A2B),
              "drop_after": n (first download only: disconnect after n records),
              "racp_error": code (answer every request with this RACP error),
              "racp_silent": true (never answer)
  heart_rate: "notifications": [hex], "interval_ms"
  pmd:        "frames": [hex], "interval_ms"
  notify:     "char": "0x2A35", "notifications": [hex], "interval_ms" (any measurement characteristic)
  heart_rate, notify and pmd take "repeat": true to start over at the end (PMD timestamps move on)

What it does is printed as JSON lines on stdout ({"event": ...}); "READY" once it owns org.bluez.
Usage: mock_bluez.py BUS_ADDRESS SCENARIO_JSON
"""

import asyncio
import json
import sys
import time

from dbus_next import BusType, DBusError, PropertyAccess, Variant
from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, dbus_property, method, signal

ADAPTER = "/org/bluez/hci0"


def say(**kw):
    kw["t"] = time.time()
    print(json.dumps(kw), flush=True)


def sig_uuid(short):
    return "0000%04x-0000-1000-8000-00805f9b34fb" % short


class ObjectManager(ServiceInterface):
    def __init__(self, tree):
        super().__init__("org.freedesktop.DBus.ObjectManager")
        self.tree = tree

    @method()
    def GetManagedObjects(self) -> "a{oa{sa{sv}}}":
        return {path: {iface.name: iface.props() for iface in ifaces} for path, ifaces in self.tree.items()}

    @signal()
    def InterfacesAdded(self, path, ifaces) -> "oa{sa{sv}}":
        return [path, ifaces]


class Adapter(ServiceInterface):
    def __init__(self):
        super().__init__("org.bluez.Adapter1")
        self.discovering = False

    def props(self):
        return {
            "Address": Variant("s", "00:1A:7D:DA:71:13"),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", "mock-hci0"),
            "Alias": Variant("s", "mock-hci0"),
            "Modalias": Variant("s", "usb:v1D6Bp0246d0537"),
            "Powered": Variant("b", True),
            "Discovering": Variant("b", self.discovering),
        }

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return "mock-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return "mock-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Modalias(self) -> "s":
        return "usb:v1D6Bp0246d0537"

    @dbus_property()
    def Powered(self) -> "b":
        return True

    @Powered.setter
    def Powered(self, value: "b"):
        say(event="powered", value=value)

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":
        return self.discovering

    @method()
    def SetDiscoveryFilter(self, filter: "a{sv}"):
        pass

    @method()
    def StartDiscovery(self):
        self.discovering = True
        self.emit_properties_changed({"Discovering": True})
        say(event="start-discovery")

    @method()
    def StopDiscovery(self):
        self.discovering = False
        self.emit_properties_changed({"Discovering": False})

    @method()
    def RemoveDevice(self, device: "o"):
        pass

    @method()
    def GetDiscoveryFilters(self) -> "as":
        return ["UUIDs", "RSSI", "Transport", "DuplicateData"]


class Device(ServiceInterface):
    def __init__(self, mock, spec):
        super().__init__("org.bluez.Device1")
        self.mock = mock
        self.spec = spec
        self.connected = False
        self.resolved = False

    def props(self):
        return {
            "Address": Variant("s", self.spec["address"]),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", self.spec["name"]),
            "Alias": Variant("s", self.spec["name"]),
            "Paired": Variant("b", False),
            "Bonded": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "LegacyPairing": Variant("b", False),
            "Connected": Variant("b", self.connected),
            "ServicesResolved": Variant("b", self.resolved),
            "RSSI": Variant("n", self.spec.get("rssi", -60)),
            "UUIDs": Variant("as", [self.spec["service"]]),
            "Adapter": Variant("o", ADAPTER),
        }

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":
        return self.spec["address"]

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":
        return self.spec["name"]

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":
        return self.spec["name"]

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> "b":
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> "b":
        return self.resolved

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":
        return self.spec.get("rssi", -60)

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return [self.spec["service"]]

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":
        return ADAPTER

    @method()
    def Connect(self):
        self.mock.export_gatt(self)
        self.connected = True
        self.resolved = True
        self.emit_properties_changed({"Connected": True, "ServicesResolved": True})
        say(event="connect", device=self.spec["name"])

    @method()
    def Disconnect(self):
        self.drop("disconnect requested")

    @method()
    def Pair(self):
        pass

    @method()
    def CancelPairing(self):
        pass

    def drop(self, why):
        if self.connected:
            self.connected = False
            self.resolved = False
            for c in self.mock.chars_of(self):
                c.notifying = False
            self.emit_properties_changed({"Connected": False, "ServicesResolved": False})
            say(event="disconnect", device=self.spec["name"], why=why)


class Service(ServiceInterface):
    def __init__(self, uuid, device_path):
        super().__init__("org.bluez.GattService1")
        self.uuid = uuid
        self.device_path = device_path

    def props(self):
        return {"UUID": Variant("s", self.uuid), "Primary": Variant("b", True), "Device": Variant("o", self.device_path)}

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> "o":
        return self.device_path


class Char(ServiceInterface):
    def __init__(self, uuid, service_path, flags, on_write=None, on_notify=None):
        super().__init__("org.bluez.GattCharacteristic1")
        self.uuid = uuid
        self.service_path = service_path
        self.flags = flags
        self.value = b""
        self.notifying = False
        self.on_write = on_write
        self.on_notify = on_notify
        self.needs_indications = False
        self.write_error = None

    def props(self):
        return {
            "UUID": Variant("s", self.uuid),
            "Service": Variant("o", self.service_path),
            "Flags": Variant("as", self.flags),
            "Value": Variant("ay", self.value),
            "Notifying": Variant("b", self.notifying),
        }

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self.notifying

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}"):
        say(event="write", uuid=self.uuid, hex=bytes(value).hex())
        if self.write_error:
            say(event="write-refused", uuid=self.uuid)
            raise DBusError("org.bluez.Error.Failed", self.write_error)
        if self.needs_indications and not self.notifying:
            # A Record Access Control Point refuses requests while its indications are off
            # (ATT error 0xFD, Client Characteristic Configuration Descriptor Improperly Configured).
            say(event="refused-unsubscribed", uuid=self.uuid)
            raise DBusError("org.bluez.Error.Failed", "CCC descriptor improperly configured (0xFD)")
        if self.on_write:
            asyncio.get_event_loop().create_task(self.on_write(bytes(value)))

    @method()
    def StartNotify(self):
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})
        say(event="subscribe", uuid=self.uuid)
        if self.on_notify:
            asyncio.get_event_loop().create_task(self.on_notify())

    @method()
    def StopNotify(self):
        self.notifying = False

    def send(self, data):
        # As BlueZ: a notification or indication reaches a client only once it enabled them
        # (StartNotify writes the characteristic's CCC descriptor); a device does not send before.
        if not self.notifying:
            say(event="refused-unsubscribed", uuid=self.uuid)
            return
        self.value = data
        self.emit_properties_changed({"Value": data})


class Mock:
    def __init__(self, bus, scenario):
        self.bus = bus
        self.tree = {}
        self.devices = []
        self.chars = {}
        self.objects = ObjectManager(self.tree)
        self.bus.export("/", self.objects)
        adapter = Adapter()
        self.export(ADAPTER, adapter)
        for i, spec in enumerate(scenario["devices"]):
            path = ADAPTER + "/dev_" + spec["address"].replace(":", "_")
            dev = Device(self, spec)
            dev.path = path
            dev.downloads = 0
            dev.gatt = None
            self.devices.append(dev)
            self.export(path, dev)

    def export(self, path, iface):
        self.bus.export(path, iface)
        self.tree.setdefault(path, []).append(iface)
        self.objects.InterfacesAdded(path, {iface.name: iface.props()})

    def chars_of(self, dev):
        return self.chars.get(dev.path, [])

    def export_gatt(self, dev):
        if dev.gatt is not None:
            return
        spec = dev.spec
        spath = dev.path + "/service0001"
        self.export(spath, Service(spec["service"], dev.path))
        chars = []

        def add(n, uuid, flags, **kw):
            c = Char(uuid, spath, flags, **kw)
            self.export("%s/char%04x" % (spath, n), c)
            chars.append(c)
            return c

        kind = spec["kind"]
        if kind == "glucose":
            meas = add(2, sig_uuid(0x2A18), ["notify"])
            ctx = add(4, sig_uuid(0x2A34), ["notify"])
            racp = add(6, sig_uuid(0x2A52), ["write", "indicate"])
            racp.needs_indications = True
            if spec.get("racp_write_fails"):
                racp.write_error = "Operation failed with ATT error: 0x0e (unlikely error)"
            add(8, sig_uuid(0x2A51), ["read"])
            if spec.get("current_time"):
                # Exact Time 256: date time, day of week (0 = unknown), 1/256 s, adjust reason.
                y, mo, d, h, mi, se = spec["current_time"]
                cts = add(10, sig_uuid(0x2A2B), ["read"])
                cts.value = y.to_bytes(2, "little") + bytes([mo, d, h, mi, se, 0, 0, 0])
            racp.on_write = lambda v: self.glucose_download(dev, meas, ctx, racp, v)
        elif kind == "heart_rate":
            hr = add(2, sig_uuid(0x2A37), ["notify"])
            hr.on_notify = lambda: self.stream(dev, hr, spec["notifications"], spec.get("interval_ms", 20))
        elif kind == "notify":
            c = add(2, sig_uuid(int(spec["char"], 16)), ["notify", "indicate"])
            c.on_notify = lambda: self.stream(dev, c, spec["notifications"], spec.get("interval_ms", 20))
        elif kind == "pmd":
            cp = add(2, "fb005c81-02e7-f387-1cad-8acd2d8df0c8", ["read", "write", "indicate"])
            data = add(4, "fb005c82-02e7-f387-1cad-8acd2d8df0c8", ["notify"])
            cp.on_write = lambda v: self.pmd_start(dev, cp, data, v)
        dev.gatt = chars
        self.chars[dev.path] = chars

    async def glucose_download(self, dev, meas, ctx, racp, request):
        spec = dev.spec
        if spec.get("racp_write_fails"):
            return
        if spec.get("racp_silent"):
            say(event="racp-ignored", device=spec["name"])
            return
        await asyncio.sleep(0.01)
        if spec.get("racp_error") is not None:
            racp.send(bytes([0x06, 0x00, request[0], spec["racp_error"]]))
            say(event="racp-error-sent", device=spec["name"], code=spec["racp_error"])
            return
        if request[:2] == b"\x01\x01":
            first = 0
        elif request[:3] == b"\x01\x03\x01" and len(request) == 5:
            first = int.from_bytes(request[3:5], "little")
        else:
            racp.send(bytes([0x06, 0x00, request[0], 0x02]))
            return
        dev.downloads += 1
        records = [r for r in spec["records"] if r["seq"] >= first]
        say(event="download", device=spec["name"], first=first, records=len(records), attempt=dev.downloads)
        drop_after = spec.get("drop_after") if dev.downloads == 1 else None
        for n, r in enumerate(records):
            if drop_after is not None and n == drop_after:
                dev.drop("walked away mid-download")
                return
            if not dev.connected:
                return
            meas.send(bytes.fromhex(r["measurement"]))
            if r.get("context"):
                ctx.send(bytes.fromhex(r["context"]))
            await asyncio.sleep(0.005)
        code = 0x01 if records else 0x06
        racp.send(bytes([0x06, 0x00, 0x01, code]))
        say(event="download-complete", device=spec["name"], sent=len(records))

    async def stream(self, dev, char, items, interval_ms):
        loops = 0
        while True:
            if not await self.stream_once(dev, char, items, interval_ms, loops):
                return
            if not dev.spec.get("repeat"):
                say(event="stream-complete", device=dev.spec["name"], sent=len(items))
                return
            loops += 1

    async def stream_once(self, dev, char, items, interval_ms, loop):
        for n, hexed in enumerate(items):
            if not dev.connected or not char.notifying:
                return False
            data = bytes.fromhex(hexed)
            if dev.spec["kind"] == "pmd" and loop and len(data) >= 10:
                # Frames repeat: their device timestamps move on by the span of the whole list.
                first = int.from_bytes(bytes.fromhex(items[0])[1:9], "little")
                last = int.from_bytes(bytes.fromhex(items[-1])[1:9], "little")
                period = (last - first) // max(len(items) - 1, 1)
                ts = int.from_bytes(data[1:9], "little") + loop * (last - first + period)
                data = data[:1] + ts.to_bytes(8, "little") + data[9:]
            char.send(data)
            if interval_ms > 0:
                await asyncio.sleep(interval_ms / 1000)
            elif n % 8 == 7:
                # As fast as it goes, but let dbus-next flush its socket (it fails when it fills up).
                await asyncio.sleep(0.001)
        return True

    async def pmd_start(self, dev, cp, data, request):
        if dev.spec.get("refuse_start") is not None:
            cp.send(bytes([0xF0, 0x02, 0x00, dev.spec["refuse_start"], 0x00]))
            say(event="pmd-refused", device=dev.spec["name"])
            return
        if request[:2] != b"\x02\x00":
            cp.send(bytes([0xF0, request[0], request[1] if len(request) > 1 else 0, 0x01, 0x00]))
            return
        cp.send(bytes([0xF0, 0x02, 0x00, 0x00, 0x00]))
        await self.stream(dev, data, dev.spec["frames"], dev.spec.get("interval_ms", 20))


async def main():
    address, scenario_path = sys.argv[1], sys.argv[2]
    with open(scenario_path) as f:
        scenario = json.load(f)
    bus = await MessageBus(bus_address=address).connect()
    Mock(bus, scenario)
    await bus.request_name("org.bluez")
    print("READY", flush=True)
    await bus.wait_for_disconnect()


if __name__ == "__main__":
    asyncio.run(main())
