"""What both Python hubs do the same way: the gateway's public key from its JWK, COSE_Sign1
verification with it, and an MQTT subscription that prints READY once it is in place."""
import base64
import json

import cbor2
import paho.mqtt.client as mqtt
from pycose.headers import KID
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage


def load_jwk(path):
    """The JWK (as `spokegate key show` prints it) and the Ed25519 key in it."""
    jwk = json.load(open(path))
    x = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    return jwk, OKPKey(crv=Ed25519, x=x)


def verified_body(payload, jwk, key):
    """The CBOR body of a COSE_Sign1 whose signature and kid check out; raises otherwise."""
    cose = CoseMessage.decode(payload)
    cose.key = key
    if not cose.verify_signature():
        raise ValueError("signature does not verify")
    if cose.phdr.get(KID, b"").hex() != jwk["kid"]:
        raise ValueError("kid mismatch")
    return cbor2.loads(cose.payload)


def subscribe(host, port, client_id, topic, on_message):
    """Connects, subscribes to `topic` at QoS 1 (again after every reconnect), prints READY once
    subscribed, and calls `on_message(client, msg)` until the client disconnects."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = lambda c, userdata, flags, rc, props: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda c, userdata, mid, rcs, props: print("READY", flush=True)
    client.on_message = lambda c, userdata, msg: on_message(c, msg)
    client.connect(host, port)
    client.loop_forever()
