#!/usr/bin/env python3
"""Seeds each fuzz target's corpus with real input from tests/fixtures (HL7 messages in MLLP,
ASTM frames, the OneTouch dump, the GATT and Polar PMD vectors). The first byte(s) of a seed pick
the profile and characteristic, so every seed is written once for each pick."""
import json, pathlib, sys

root = pathlib.Path(__file__).resolve().parent
fixtures = root.parent / "tests" / "fixtures"
corpus = root / "corpus"

def write(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

# Serial devices: every frame for every pick of profile, framed (reads of 64) and as one frame.
wire = [(p.stem, b"\x0b" + p.read_bytes() + b"\x1c\x0d") for p in sorted((fixtures / "hl7").glob("*.hl7"))]
wire.append(("onetouch", (fixtures / "onetouch_ultra2_dmp.txt").read_bytes()))
wire += [(v["id"], bytes.fromhex(v["hex"])) for v in json.loads((fixtures / "astm" / "astm_vectors.json").read_text()) if v.get("hex")]
wire.append(("vitals", b"SYS=120 DIA=80 MAP=93 PR=72 SPO2=98 TEMP=367\r\n"))
for name, data in wire:
    for pick in range(16):
        write("device_stream", f"{name}-{pick}", bytes([pick, 63]) + data)
        write("device_stream", f"{name}-{pick}-frame", bytes([pick | 0x80, 0]) + data)

# BLE: every GATT vector from its characteristic, for every BLE profile.
from_index = [0x2A18, 0x2A34, 0x2A52, 0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A60, 0x2A2B]
for i, v in enumerate(json.loads((fixtures / "ble" / "gatt_vectors.json").read_text())):
    u = int(v["characteristic_uuid"], 16)
    if u in from_index and v.get("hex"):
        for pick in range(8):
            write("ble_notification", f"gatt-{i}-{pick}", bytes([pick, from_index.index(u)]) + bytes.fromhex(v["hex"]))
pmd = json.loads((fixtures / "ble" / "pmd_ecg_vectors.json").read_text())
def hexes(x):
    if isinstance(x, dict):
        for k, val in x.items():
            if isinstance(val, str) and k.endswith("hex"):
                yield val
            else:
                yield from hexes(val)
    elif isinstance(x, list):
        for val in x:
            yield from hexes(val)
for i, h in enumerate(hexes(pmd)):
    for pick in range(8):
        write("ble_notification", f"pmd-{i}-{pick}", bytes([pick, len(from_index) + 1]) + bytes.fromhex(h))

# Profiles and configuration: the shipped profiles and the example configuration.
for p in sorted((root.parent / "device-profiles").glob("*.toml")):
    write("profile_and_config", p.stem, b"\x00" + p.read_bytes())
for p in sorted((root.parent / "examples").glob("*.toml")):
    write("profile_and_config", "config-" + p.stem, b"\x01" + p.read_bytes())
print("seeded", corpus, file=sys.stderr)

# Commands a trusted hub signs (JSON mode: the first byte's high nibble 10-15), one per command
# topic (the low nibble), each inside its validity window at the target's clock.
NOW = 1_800_000_000_000_000
names = ["consult.start", "consult.end", "capture", "stream.start", "stream.stop", "records.fetch", "status", "rebirth"]
for i, name in enumerate(names):
    args = {"consult.start": {"consult": "C-1"}, "consult.end": {}, "status": {}, "rebirth": {}}.get(name, {"dev": "ecg-1"})
    body = {"v": 1, "type": "cmd", "site": "site-1", "gw": "gw-1", "hub": "hub-1", "id": f"c-{i}", "name": name,
            "args": args, "iat": NOW, "exp": NOW + 60_000_000}
    write("gateway_command", f"cmd-{name}", bytes([0xA0 | i]) + json.dumps(body, separators=(",", ":")).encode())

# Bodies a trusted gateway signs (JSON mode: high nibble 9), on their topics (the low nibble
# indexes hub_message's TAILS), in the shapes docs/contract.cddl gives.
import base64, hashlib
T = 1_700_000_000_000_000
head = {"v": 1, "site": "site-1", "gw": "gw-1", "dev": "ecg-1", "prof": "ecg-text-single", "t": T}
ecg = {"mdc": 131329, "name": "MDC_ECG_ELEC_POTL_I"}
samples = b"".join(int(v).to_bytes(2, "little", signed=True) for v in (-120, -80, 15, 300, 90, -40, -60, -61))
bodies = [
    (0, {**head, "type": "obs", "seq": 1, "obs": [{"code": {"mdc": 149546, "loinc": "8867-4", "name": "MDC_PULS_RATE_NON_INV"},
                                                "val": 72.0, "unit": {"ucum": "/min", "mdc": 264864}, "q": "ok"}]}),
    (1, {**head, "type": "wave", "seq": 2, "stream": "ecg", "rate": 360.0, "i0": 0, "t0": T, "n": 8,
         "ch": [{"label": "I", "code": ecg, "unit": {"ucum": "mV"}, "gain": 0.005, "base": 0, "enc": "i16le",
                 "data": base64.b64encode(samples).decode()}]}),
    (1, {**head, "type": "wave", "seq": 3, "stream": "ecg", "rate": 360.0, "i0": 8, "t0": T + 22222, "n": 8,
         "ch": [{"label": "I", "code": ecg, "unit": {"ucum": "mV"}, "gain": 0.005, "base": 0, "enc": "i32le",
                 "data": base64.b64encode(b"".join(int(v).to_bytes(4, "little", signed=True) for v in range(8))).decode()}]}),
    (3, {**head, "type": "event", "seq": 4, "event": {"code": "checksum-mismatch", "text": "bad", "sev": "warn", "data": {"bytes": 3}}}),
    # The gateway's own event that its clock was stepped (the recordings of seq 1..=3 move).
    (5, {"v": 1, "site": "site-1", "gw": "gw-1", "t": T + 864_000_000_000, "type": "event", "seq": 7,
         "event": {"code": "clock-stepped", "text": "stepped", "sev": "warn",
                   "data": {"step_us": 864_000_000_000, "seq_from": 1, "seq_to": 3, "queued": 0}}}),
]
jpeg = b"\xff\xd8\xff\xdb" + bytes(60) + b"\xff\xd9"
mhead = {**head, "dev": "cam-1", "prof": "usb-microscope"}
for part in range(2):
    chunk = jpeg[part * 33:(part + 1) * 33]
    bodies.append((2, {**mhead, "type": "media", "seq": 5 + part, "media": {"id": "m-1", "mime": "image/jpeg", "size": len(jpeg),
                 "sha256": hashlib.sha256(jpeg).hexdigest(), "part": part + 1, "parts": 2, "data": base64.b64encode(chunk).decode()}}))
for i, (tail, body) in enumerate(bodies):
    write("hub_message", f"body-{i}", bytes([0x90 | tail]) + json.dumps(body, separators=(",", ":")).encode())

# Images: the demo's blood smear (BCCD) as the camera sends it, and small re-encodings of it as PNG
# and TIFF where ImageMagick's `convert` is on the machine.
import shutil, subprocess, tempfile
smear = root.parent / "src" / "sim" / "recordings" / "bccd_BloodImage_00000.jpg"
write("still_image", "smear.jpg", smear.read_bytes())
if shutil.which("convert"):
    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("png", "tiff"):
            out = pathlib.Path(tmp) / f"smear.{ext}"
            if subprocess.run(["convert", str(smear), "-resize", "32x24", str(out)], capture_output=True).returncode == 0:
                write("still_image", f"smear-small.{ext}", out.read_bytes())

# A meter that must be asked (the OneTouch's dialogue): connect, then its replies as the sourced
# dump and the firmware, serial number and clock lines the profile's comments show, each judged
# usable; then the same with the time running out between them.
def sum16(body):
    return f"{body} {sum(body.encode()) & 0xFFFF:04X}".encode()
dump = [l.rstrip(b"\r") for l in (fixtures / "onetouch_ultra2_dmp.txt").read_bytes().split(b"\n") if l.strip()]
replies = [sum16("?P02.00.00 30/08/06"), sum16('@ "GMF600DCY"'), sum16('F "SAT","08/03/13","22:12:00   "')]
script = b"\x00"
for r in replies:
    script += b"\x06" + r + b"\n\x03"
script += b"".join(b"\x06" + l + b"\n" for l in dump) + b"\x03\x01"
write("meter_dialogue", "onetouch-connect", b"\x00" + script)
write("meter_dialogue", "onetouch-late", b"\x00" + script.replace(b"\n\x03", b"\n\xfa\x03"))
