#!/usr/bin/env python3
"""A stand-in for `ferry run` used to self-test the harness (selftest.py):
prints a little boot noise, `ferry-guest: ready` and the `ferry:/# ` prompt,
then behaves like a shell with a line editor on a raw console: echoes what
is typed, runs each line with /bin/sh, translates \\n to \\r\\n.
`poweroff` exits 0 (printing a --stats line to stderr if asked).

    fakeguest.py run [--console socket:PATH] [--stats] [--boot-delay S]
"""

import os
import socket
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        args = args[1:]
    console = "stdio"
    stats = False
    delay = 0.3
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--console":
            console = args[i + 1]
            i += 2
        elif a == "--stats":
            stats = True
            i += 1
        elif a == "--boot-delay":
            delay = float(args[i + 1])
            i += 2
        else:
            print(f"ferry: unknown option {a}", file=sys.stderr)
            return 2

    if console.startswith("socket:"):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(console[len("socket:"):])
        srv.listen(1)
        conn, _ = srv.accept()
        # Like a real console socket: what was printed before the client
        # came is gone, so the client has to press Enter to see a prompt.
        time.sleep(delay)
        rfd = wfd = conn.fileno()
    else:
        rfd, wfd = 0, 1

    def out(s):
        data = s.replace("\n", "\r\n").encode()
        while data:
            n = os.write(wfd, data)
            data = data[n:]

    t0 = time.monotonic()
    out("[    0.000000] Linux version 6.1.0 (fake)\n")
    time.sleep(delay)
    out("[    0.100000] Run /init as init process\n")
    if not console.startswith("socket:"):
        out("ferry-guest: ready\n")
    prompt = "\x1b[0mferry:/# "
    out(prompt)
    line = b""
    insns = 0
    while True:
        data = os.read(rfd, 1024)
        if not data:
            return 0
        for b in data:
            c = bytes([b])
            if c in (b"\r", b"\n"):
                out("\n")
                cmd = line.decode()
                line = b""
                if cmd.strip() == "poweroff":
                    out("reboot: Power down\n")
                    if stats:
                        secs = time.monotonic() - t0
                        print(f"ferry: stats: instructions={int(secs * 1e8)} seconds={secs:.3f} "
                              f"mips=100.0", file=sys.stderr)
                    return 0
                if cmd.strip():
                    r = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    out(r.stdout.decode(errors="replace"))
                out(prompt)
            elif c == b"\x7f":
                if line:
                    line = line[:-1]
                    out("\b \b")
            else:
                line += c
                os.write(wfd, c)
                insns += 1


if __name__ == "__main__":
    sys.exit(main())
