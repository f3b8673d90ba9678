#!/usr/bin/env python3
"""An independent waveform hub: paho-mqtt + pycose + cbor2, and its own unpacking of the sample
packings as docs/contract.cddl describes them (rice, dzv, i16le, i32le).

Usage: wave_hub.py HOST PORT JWK_FILE STREAM=HEADER.hea|STREAM=wav:FILE.wav:N [...]

Subscribes to spokegate/v1/+/+/dev/+/wave/+, prints READY once subscribed, verifies every
COSE_Sign1 with the JWK, unpacks every channel, reassembles each stream (i0 must be contiguous),
and once a stream holds as many samples as the WFDB header's record says, compares each
channel's 16-bit sample sum with the checksum the header states; for a WAV source (read with
Python's own `wave` module) it compares every one of the first N samples (those the device sent). Prints one JSON line per stream
and exits 0 when every stream matched, 1 otherwise. Shares no code with the gateway.
"""
import json
import sys

from hub_common import load_jwk, subscribe, verified_body

host, port, jwk_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
wanted = dict(arg.split("=", 1) for arg in sys.argv[4:])
jwk, key = load_jwk(jwk_file)


def header(path):
    """WFDB header: number of samples and each signal's (description, checksum)."""
    lines = [l for l in open(path).read().splitlines() if l.strip() and not l.startswith("#")]
    rec = lines[0].split()
    nsig, nsamp = int(rec[1]), int(rec[3])
    sigs = []
    for l in lines[1 : 1 + nsig]:
        f = l.split(None, 8)
        sigs.append((f[8].strip() if len(f) > 8 else "", int(f[6]) & 0xFFFF))
    return nsamp, sigs


def wav_samples(path):
    """Every sample of a 16-bit PCM WAV, per channel, read with the standard library."""
    import wave

    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("not 16-bit PCM")
        ch, frames = w.getnchannels(), w.readframes(w.getnframes())
    values = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    return [values[c::ch] for c in range(ch)]


def varint(data, pos):
    z, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            return z, pos
        shift += 7


def unzig(z):
    return (z >> 1) ^ -(z & 1)


def unpack(enc, data, n):
    if enc == "i16le":
        return [int.from_bytes(data[2 * i : 2 * i + 2], "little", signed=True) for i in range(n)]
    if enc == "i32le":
        return [int.from_bytes(data[4 * i : 4 * i + 4], "little", signed=True) for i in range(n)]
    if enc == "dzv":
        out, pos, prev = [], 0, 0
        for _ in range(n):
            z, pos = varint(data, pos)
            prev += unzig(z)
            out.append(prev)
        return out
    if enc == "rice":
        order, k = data[0], data[1]
        pos, s = 2, []
        for _ in range(min(order, n)):
            z, pos = varint(data, pos)
            s.append(unzig(z))
        bit = pos * 8

        def read(count):
            nonlocal bit
            v = 0
            for _ in range(count):
                v = (v << 1) | ((data[bit // 8] >> (7 - bit % 8)) & 1)
                bit += 1
            return v

        while len(s) < n:
            q = 0
            while q < 32 and read(1) == 1:
                q += 1
            z = read(64) if q == 32 else (q << k) | read(k)
            i = len(s)
            pred = [0, s[i - 1] if i >= 1 else 0,
                    2 * s[i - 1] - s[i - 2] if i >= 2 else 0,
                    3 * s[i - 1] - 3 * s[i - 2] + s[i - 3] if i >= 3 else 0][order]
            s.append(pred + unzig(z))
        return s
    raise ValueError("unknown packing " + enc)


streams = {}
done = {}
failed = False


def on_message(client, msg):
    global failed
    stream = msg.topic.split("/")[-1]
    try:
        body = verified_body(msg.payload, jwk, key)
        if body["type"] != "wave" or body["stream"] != stream:
            raise ValueError("not this stream's wave body")
        st = streams.setdefault(stream, {"next": 0, "ch": [[] for _ in body["ch"]], "labels": [c["label"] for c in body["ch"]], "enc": set()})
        if body["i0"] != st["next"]:
            raise ValueError("chunk at %d, expected %d" % (body["i0"], st["next"]))
        for c, samples in zip(body["ch"], st["ch"]):
            samples.extend(unpack(c["enc"], c["data"], body["n"]))
            st["enc"].add(c["enc"])
        st["next"] += body["n"]
    except Exception as e:
        print(json.dumps({"stream": stream, "error": str(e)}), flush=True)
        failed = True
        client.disconnect()
        return
    if stream in wanted and stream not in done and wanted[stream].startswith("wav:"):
        path, count = wanted[stream][4:].rsplit(":", 1)
        nsamp = int(count)
        source = [c[:nsamp] for c in wav_samples(path)]
        st = streams[stream]
        if st["next"] >= nsamp:
            same = [samples[:nsamp] == src for samples, src in zip(st["ch"], source)]
            if not all(same):
                failed = True
            done[stream] = True
            print(json.dumps({"stream": stream, "samples": nsamp, "encodings": sorted(st["enc"]), "identical": same}), flush=True)
    elif stream in wanted and stream not in done:
        nsamp, sigs = header(wanted[stream])
        st = streams[stream]
        if st["next"] >= nsamp:
            result = []
            for (desc, stated), label, samples in zip(sigs, st["labels"], st["ch"]):
                ours = sum(samples[:nsamp]) & 0xFFFF
                result.append({"signal": desc, "label": label, "stated": stated, "computed": ours})
                if ours != stated:
                    failed = True
            done[stream] = True
            print(json.dumps({"stream": stream, "samples": nsamp, "encodings": sorted(st["enc"]), "checksums": result}), flush=True)
    if len(done) == len(wanted):
        client.disconnect()


subscribe(host, port, "python-wave-hub", "spokegate/v1/+/+/dev/+/wave/+", on_message)
sys.exit(1 if failed else 0)
