"""virtio-net on a tap, in the "two hosts on one machine" topology
(scripts/netns.sh, tests/lib/netns.py): the guest runs inside host-a with
`--net tap=tap0` and is reached from the client namespace over the LAN.

Skipped without root / network namespaces / /dev/net/tun, or without the
guest. Each test brings up a topology of its own (unique prefix) and tears
it down afterwards, also on failure.
"""

import hashlib
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import require_guest, scaled, timeout  # noqa: E402
import netns  # noqa: E402

BOOT_TIMEOUT = 120  # seconds, before FERRY_TEST_TIMEOUT_SCALE
STREAM_BYTES = 4 << 20
STREAM_TIMEOUT = 120  # seconds, before scaling

GATE = "test_ping_guest"


def topology():
    netns.require()
    require_guest()
    return netns.Topology()


def vm_on(t, host="a"):
    return t.ferry(host, ["--append", t.guest_append()])


def lines(text):
    return [line.strip() for line in text.splitlines()]


def test_ping_guest():
    with topology() as t:
        with vm_on(t) as vm:
            vm.boot(BOOT_TIMEOUT)
            # The kernel reports a new link state from its linkwatch work,
            # up to a second after `ip link set up`: a guest that reaches
            # its prompt quickly may still read "down" at first.
            out = vm.run("for i in $(seq 50); do grep -q up /sys/class/net/eth0/operstate && break; "
                         "sleep 0.1; done; cat /sys/class/net/eth0/address /sys/class/net/eth0/operstate",
                         timeout=scaled(30))
            assert lines(out) == ["52:54:00:12:34:56", "up"], f"eth0: {out!r}"
            t.ping(t.client, t.GUEST_IP, count=3)
            # And the other way: the guest reaches its host and the client.
            vm.run(f"ping -c 1 -W 10 {t.HOST_A_IP}", timeout=30)
            vm.run(f"ping -c 1 -W 10 {t.CLIENT_IP}", timeout=30)


def test_vm_on_host_b():
    # Same topology, other host: the guest has the same address and MAC.
    with topology() as t:
        with vm_on(t, "b") as vm:
            vm.boot(BOOT_TIMEOUT)
            t.ping(t.client, t.GUEST_IP, count=3)
            vm.run(f"ping -c 1 -W 10 {t.HOST_B_IP}", timeout=30)


def test_mac_option():
    with topology() as t:
        with t.ferry("a", ["--append", t.guest_append()], mac="52:54:00:ab:cd:ef") as vm:
            vm.boot(BOOT_TIMEOUT)
            out = vm.run("cat /sys/class/net/eth0/address")
            assert lines(out) == ["52:54:00:ab:cd:ef"], f"eth0 address: {out!r}"
            t.ping(t.client, t.GUEST_IP, count=1)
            # The client learned the guest under that MAC.
            r = t.run(t.client, ["ip", "neigh", "show", t.GUEST_IP])
            assert "52:54:00:ab:cd:ef" in r.stdout, f"client's neighbour table: {r.stdout!r}"


_FETCH = r"""
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
sys.stdout.buffer.write(opener.open(sys.argv[1], timeout=float(sys.argv[2])).read())
"""


def test_http_from_client():
    with topology() as t:
        with vm_on(t) as vm:
            vm.boot(BOOT_TIMEOUT)
            vm.run("mkdir -p /www && seq 1 20000 > /www/seq.txt && httpd -p 80 -h /www")
            want = "".join(f"{i}\n" for i in range(1, 20001))
            url = f"http://{t.GUEST_IP}/seq.txt"
            r = t.python(t.client, _FETCH, url, "60", timeout=90)
            assert r.stdout == want, (f"GET {url}: {len(r.stdout)} bytes, want {len(want)}; "
                                      f"differs from byte {_first_diff(r.stdout, want)}")


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# Client side of the nc streams: connect (retrying until the guest listens),
# then either send a file and wait for the peer to close, or read N bytes.
_SEND = r"""
import socket, sys, time
addr, port, path, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + limit
while True:
    try:
        s = socket.create_connection((addr, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.3)
s.settimeout(limit)
with open(path, "rb") as f:
    s.sendall(f.read())
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print("sent")
"""

_RECV = r"""
import hashlib, socket, sys, time
addr, port, want, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + limit
while True:
    try:
        s = socket.create_connection((addr, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.3)
s.settimeout(limit)
h = hashlib.sha256()
got = 0
while got < want:
    chunk = s.recv(min(65536, want - got))
    if not chunk:
        break
    h.update(chunk)
    got += len(chunk)
s.close()
print("bytes=%d sha256=%s" % (got, h.hexdigest()))
"""


def _sha_of(out):
    for line in lines(out):
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            return parts[0]
    raise AssertionError(f"no sha256sum line in {out!r}")


def _in_thread(fn):
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # reported by the caller
            box["error"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


def _finish(th, box, what):
    th.join(scaled(30))
    if th.is_alive():
        raise AssertionError(f"{what}: the client did not finish after the guest's nc did")
    if "error" in box:
        raise box["error"]
    return box["result"]


@timeout(300)
def test_nc_stream_both_ways():
    with topology() as t:
        with vm_on(t) as vm:
            vm.boot(BOOT_TIMEOUT)
            # client → guest: the guest's nc listens in the foreground (stdin
            # not the console: busybox nc exits once both stdin and the
            # connection are at EOF), the client connects as soon as it can.
            data = os.urandom(STREAM_BYTES)
            want = hashlib.sha256(data).hexdigest()
            src = Path(vm.workdir) / "stream.bin"
            src.write_bytes(data)
            th, box = _in_thread(lambda: t.python(t.client, _SEND, t.GUEST_IP, "5000", src,
                                                  str(scaled(STREAM_TIMEOUT)),
                                                  timeout=STREAM_TIMEOUT + 30))
            vm.run("nc -l -p 5000 < /dev/null > /tmp/in", timeout=STREAM_TIMEOUT)
            _finish(th, box, "client→guest")
            got = _sha_of(vm.run("sha256sum /tmp/in"))
            size = vm.run("wc -c < /tmp/in").strip()
            assert got == want, f"client→guest: guest got {size} bytes, sha256 {got}, want {want}"

            # guest → client: fresh data made in the guest.
            vm.run(f"dd if=/dev/urandom of=/tmp/blob bs=65536 count={STREAM_BYTES // 65536} "
                   "2>/dev/null", timeout=STREAM_TIMEOUT)
            want = _sha_of(vm.run("sha256sum /tmp/blob", timeout=STREAM_TIMEOUT))
            th, box = _in_thread(lambda: t.python(t.client, _RECV, t.GUEST_IP, "5001",
                                                  str(STREAM_BYTES), str(scaled(STREAM_TIMEOUT)),
                                                  timeout=STREAM_TIMEOUT + 30))
            vm.run("nc -l -p 5001 < /tmp/blob", timeout=STREAM_TIMEOUT)
            out = _finish(th, box, "guest→client").stdout
            assert f"bytes={STREAM_BYTES} sha256={want}" in out, \
                f"guest→client: client got {out.strip()!r}, want {STREAM_BYTES} bytes sha256 {want}"
