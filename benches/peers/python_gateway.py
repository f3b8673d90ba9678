"""A serial-to-MQTT gateway as it is commonly written in Python, as a peer for
`cargo bench --bench peers` (it is not part of spokegate).

pyserial reads KEY=VALUE lines from the port, each known key becomes an observation (MDC code,
UCUM unit) in a JSON body with a sequence number and the gateway time, the body is signed with
Ed25519 (cryptography), and {"body", "sig"} is published at QoS 1 (paho-mqtt, network loop on its
own thread). No durable queue: what is not delivered when the process stops is lost.

usage: python_gateway.py SERIAL_PATH BROKER_PORT TOPIC
"""

import base64
import json
import sys
import time

import paho.mqtt.client as mqtt
import serial
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FIELDS = {
    "SYS": (150021, "mm[Hg]"),
    "DIA": (150022, "mm[Hg]"),
    "MAP": (150023, "mm[Hg]"),
    "PR": (149530, "/min"),
    "SPO2": (150456, "%"),
}


def observations(line):
    obs = []
    for pair in line.split():
        key, _, value = pair.partition("=")
        field = FIELDS.get(key)
        if field is None:
            continue
        try:
            obs.append({"code": field[0], "val": float(value), "unit": field[1]})
        except ValueError:
            continue
    return obs


def main():
    port_path, broker_port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    key = Ed25519PrivateKey.generate()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="python-gateway")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    port = serial.Serial(port_path, 115200, timeout=1)
    seq = 0
    pending = b""
    while True:
        # Whatever is waiting (at least one byte), split into lines.
        chunk = port.read(port.in_waiting or 1)
        if not chunk:
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            obs = observations(raw.decode("ascii", "replace"))
            if not obs:
                continue
            seq += 1
            body = json.dumps({"seq": seq, "t": time.time_ns() // 1000, "obs": obs}, separators=(",", ":")).encode()
            signed = {"body": base64.b64encode(body).decode(), "sig": base64.b64encode(key.sign(body)).decode()}
            client.publish(topic, json.dumps(signed, separators=(",", ":")), qos=1)


if __name__ == "__main__":
    main()
