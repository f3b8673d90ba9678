#!/usr/bin/env python3
"""An HL7 device on a pseudo-terminal, for the test that runs the packaged daemon under systemd:
the PTY is made inside the booted machine (its own /dev/pts), so the device must live there too.

Usage: hl7_device.py LINK
Links the PTY's slave at LINK and prints `ready`. Then, for each line `send FILE` on stdin, sends
the HL7 message in FILE in MLLP framing (0x0B message 0x1C 0x0D) and prints `ack FILE CODE`, CODE
being MSA-1 of the acknowledgement read back. As a real device does, it sends the message again
when no acknowledgement comes within 5 s (the gateway may be restarting), up to 12 times; then it
prints `noack FILE`.

`release` clears the line's exclusive mode (TIOCNXCL) and prints `released`. The gateway opens
its port exclusively (TIOCEXCL), so that no other program reads its device. A USB adapter is
released by the kernel when the last process that has it open ends; a PTY is not, because this
script holds both its ends. After the test kills the gateway, `release` does what the kernel
does for an adapter. Without it, the restarted gateway, which is not root, would get EBUSY.
"""
import os
import fcntl
import select
import sys
import termios
import time
import tty

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def main():
    link = sys.argv[1]
    master, slave = os.openpty()
    # The slave stays open here and raw: bytes written before the gateway opens the line are
    # neither echoed nor translated by the line discipline.
    tty.setraw(slave)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.ttyname(slave), link)
    # The service user opens it (a real adapter is group dialout; the test's stand-in is open).
    os.chmod(os.ttyname(slave), 0o666)
    print("ready", flush=True)
    pending = b""
    for line in sys.stdin:
        cmd, _, path = line.strip().partition(" ")
        if cmd == "release":
            fcntl.ioctl(slave, getattr(termios, "TIOCNXCL", 0x540D))
            print("released", flush=True)
            continue
        if cmd != "send":
            continue
        with open(path, "rb") as f:
            frame = SB + f.read() + EB + CR
        code = None
        for _attempt in range(12):
            os.write(master, frame)
            deadline = time.monotonic() + 5
            while code is None and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                try:
                    pending += os.read(master, 4096)
                except OSError:
                    # No process holds the line (the gateway restarting): wait and read again.
                    time.sleep(0.05)
                    continue
                while EB + CR in pending:
                    ack, _, pending = pending.partition(EB + CR)
                    for seg in ack.lstrip(SB).split(b"\r"):
                        if seg.startswith(b"MSA|"):
                            code = seg.split(b"|")[1].decode()
            if code is not None:
                break
        print(f"ack {path} {code}" if code is not None else f"noack {path}", flush=True)


if __name__ == "__main__":
    main()
