#!/usr/bin/env python3
"""An independent hub: paho-mqtt subscriber + pycose verifier + cbor2 decoder.

Usage: verify_hub.py HOST PORT JWK_FILE COUNT

Subscribes to spokegate/v1/#, prints READY once subscribed, then for each message on an
.../obs or .../event topic verifies the COSE_Sign1 signature with the public key from the JWK
(and nothing else), decodes the CBOR body, checks site/gw/dev against the topic, and prints one
JSON line per verified body. Exits 0 after COUNT signed bodies, 1 on any verification failure.
Written against the spokegate wire contract only; it shares no code with the gateway.
"""
import base64
import json
import sys

import cbor2
import paho.mqtt.client as mqtt
from pycose.headers import KID
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage

host, port, jwk_file, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
jwk = json.load(open(jwk_file))
x = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
key = OKPKey(crv=Ed25519, x=x)
seen = 0
failed = False


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe("spokegate/v1/#", qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("READY", flush=True)


def on_message(client, userdata, msg):
    global seen, failed
    parts = msg.topic.split("/")
    if parts[-1] not in ("obs", "event"):
        return
    try:
        cose = CoseMessage.decode(msg.payload)
        cose.key = key
        if not cose.verify_signature():
            raise ValueError("signature does not verify")
        if cose.phdr.get(KID, b"").hex() != jwk["kid"]:
            raise ValueError("kid mismatch")
        body = cbor2.loads(cose.payload)
        site, gw, dev = parts[2], parts[3], parts[5]
        if (body["site"], body["gw"], body["dev"]) != (site, gw, dev):
            raise ValueError("ids do not match the topic")
        print(json.dumps({"topic": msg.topic, "body": body}), flush=True)
        seen += 1
    except Exception as e:  # report, never show as valid
        print(json.dumps({"topic": msg.topic, "error": str(e)}), flush=True)
        failed = True
    if seen >= count or failed:
        client.disconnect()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="python-hub")
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(host, port)
client.loop_forever()
sys.exit(1 if failed else 0)
