#!/usr/bin/env python3
"""An independent hub: paho-mqtt subscriber + pycose verifier + cbor2 decoder.

Usage: verify_hub.py HOST PORT JWK_FILE COUNT

Subscribes to spokegate/v1/#, prints READY once subscribed, then for each message on an
.../obs or .../event topic verifies the COSE_Sign1 signature with the public key from the JWK
(and nothing else; the kid is derived from the key, not taken from the JWK), decodes the CBOR (or
JSON) body, checks site/gw/dev against the topic, and prints one
JSON line per verified body. Exits 0 after COUNT signed bodies, 1 on any verification failure.
Written against the spokegate wire contract only; it shares no code with the gateway.
"""
import json
import sys

from hub_common import load_jwk, subscribe, verified_body

host, port, jwk_file, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
jwk, key = load_jwk(jwk_file)
seen = 0
failed = False


def on_message(client, msg):
    global seen, failed
    parts = msg.topic.split("/")
    if parts[-1] not in ("obs", "event"):
        return
    try:
        body = verified_body(msg.payload, jwk, key)
        # {root}/dev/{dev}/obs|event, or {root}/event about the gateway itself (no dev).
        site, gw = parts[2], parts[3]
        dev = parts[5] if len(parts) == 7 and parts[4] == "dev" else None
        if (body["site"], body["gw"], body.get("dev")) != (site, gw, dev):
            raise ValueError("ids do not match the topic")
        print(json.dumps({"topic": msg.topic, "body": body}), flush=True)
        seen += 1
    except Exception as e:  # report, never show as valid
        print(json.dumps({"topic": msg.topic, "error": str(e)}), flush=True)
        failed = True
    if seen >= count or failed:
        client.disconnect()


subscribe(host, port, "python-hub", "spokegate/v1/#", on_message)
sys.exit(1 if failed else 0)
