"""What both Python hubs do the same way: the gateway's public key from its JWK, COSE_Sign1
verification with it, and an MQTT subscription that prints READY once it is in place."""
import base64
import hashlib
import json

import cbor2
import paho.mqtt.client as mqtt
from pycose.headers import KID, ContentType
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage


def load_jwk(path):
    """The JWK (as `spokegate key show` prints it) and the Ed25519 key in it. The kid is derived
    here from the contract's rule (the first 8 bytes of SHA-256 of the raw public key), not taken
    on trust: a JWK whose kid does not match its key is refused."""
    jwk = json.load(open(path))
    x = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    if len(x) != 32:
        raise ValueError("x is not a 32-byte Ed25519 key")
    kid = hashlib.sha256(x).digest()[:8].hex()
    if jwk.get("kid") != kid:
        raise ValueError("the JWK's kid %r is not SHA-256(x)[:8] = %s" % (jwk.get("kid"), kid))
    jwk["derived_kid"] = kid
    return jwk, OKPKey(crv=Ed25519, x=x)


def verified_body(payload, jwk, key):
    """The body of a COSE_Sign1 whose signature and kid check out (CBOR, or JSON when the
    protected content type says application/json); raises otherwise."""
    cose = CoseMessage.decode(payload)
    cose.key = key
    if not cose.verify_signature():
        raise ValueError("signature does not verify")
    if cose.phdr.get(KID, b"").hex() != jwk["derived_kid"]:
        raise ValueError("kid mismatch")
    content_type = cose.phdr.get(ContentType)
    if content_type == "application/json":
        return json.loads(cose.payload)
    if content_type != 60:
        raise ValueError("content type %r is neither 60 (CBOR) nor application/json" % (content_type,))
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
