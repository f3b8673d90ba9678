#!/usr/bin/env python3
"""Reads what `spokegate watch --record` wrote with independent readers: WFDB records with
PhysioNet's `wfdb` package (digital samples, header fields, checksums), WAV files with the
standard library's `wave` and with `soundfile` (libsndfile), and compares them with the source
records and recordings (read by the same independent readers).

Usage: read_records.py wfdb RECORD_PATH SOURCE_RECORD_PATH | wav FILE SOURCE_WAV N | header RECORD_PATH
(`header`: what the reader makes of a record's signals: names, units, gains, digital samples)

Prints one JSON line with what it found; exits 0 when everything matched, 1 otherwise.
"""
import json
import sys
import wave

import soundfile
import wfdb


def wfdb_check(record_path, source_path):
    ours = wfdb.rdrecord(record_path, physical=False)
    theirs = wfdb.rdrecord(source_path, physical=False)
    same_samples = ours.d_signal.shape == theirs.d_signal.shape and bool((ours.d_signal == theirs.d_signal).all())
    # The 16-bit checksums of what our file holds, against what its header states and what the
    # source's header states.
    computed = [int(s) & 0xFFFF for s in ours.d_signal.astype("int64").sum(axis=0)]
    result = {
        "fs": [ours.fs, theirs.fs],
        "sig_name": [ours.sig_name, theirs.sig_name],
        "adc_gain": [ours.adc_gain, theirs.adc_gain],
        "baseline": [ours.baseline, theirs.baseline],
        "checksum_header": [c & 0xFFFF for c in ours.checksum],
        "checksum_computed": computed,
        "checksum_source": [c & 0xFFFF for c in theirs.checksum],
        "same_samples": same_samples,
        "nsamp": [ours.sig_len, theirs.sig_len],
    }
    ok = (
        same_samples
        and ours.fs == theirs.fs
        and ours.sig_name == theirs.sig_name
        and list(ours.adc_gain) == list(theirs.adc_gain)
        and list(ours.baseline) == list(theirs.baseline)
        and result["checksum_header"] == computed == result["checksum_source"]
    )
    return result, ok


def wav_check(path, source, n):
    with wave.open(path, "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    ours_wave = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    ours_sf, sf_rate = soundfile.read(path, dtype="int16")
    src_sf, _ = soundfile.read(source, dtype="int16")
    src = [int(v) for v in src_sf[:n]]
    result = {
        "rate": [rate, sf_rate],
        "channels": channels,
        "sample_width": width,
        "samples": [len(ours_wave), len(ours_sf), len(src)],
        "same_wave": ours_wave == src,
        "same_soundfile": [int(v) for v in ours_sf] == src,
    }
    return result, result["same_wave"] and result["same_soundfile"] and width == 2


def header_read(record_path):
    r = wfdb.rdrecord(record_path, physical=False)
    result = {
        "sig_name": r.sig_name,
        "units": r.units,
        "adc_gain": [float(g) for g in r.adc_gain],
        "adc_res": [int(a) for a in r.adc_res],
        "d_signal": r.d_signal.astype("int64").T.tolist(),
    }
    return result, True


kind = sys.argv[1]
if kind == "wfdb":
    result, ok = wfdb_check(sys.argv[2], sys.argv[3])
elif kind == "header":
    result, ok = header_read(sys.argv[2])
else:
    result, ok = wav_check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
result["ok"] = ok
print(json.dumps(result))
sys.exit(0 if ok else 1)
