"""The "two hosts on one machine" topology of scripts/netns.sh, for tests.

    from netns import Topology
    with Topology() as t:                       # Skip if netns are unavailable
        with t.ferry("a", ["--append", t.guest_append()]) as vm:
            vm.boot()
            t.ping(t.client, t.GUEST_IP)        # from the client namespace
            r = t.run(t.client, ["python3", "-c", "..."])

Every Topology gets namespace names with a prefix of its own
(`f<pid>-host-a`, ...), so parallel runs do not clash, and is always torn
down on leaving the `with` block, also on failure. If a run was killed
before it could clean up, the next Topology removes its namespaces (those
whose prefix names a process that no longer exists).

Standard library only.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import harness
from ferryvm import FerryVM

SCRIPT = harness.REPO / "scripts" / "netns.sh"

# Namespaces (after the prefix) that scripts/netns.sh creates.
NAMES = ("host-a", "host-b", "client", "ferry-lan")
_STALE = re.compile(r"^f(\d+)-(%s)$" % "|".join(re.escape(n) for n in NAMES))


def _netns_list():
    try:
        return sorted(os.listdir("/run/netns"))
    except OSError:
        return []


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def available():
    """None if network namespaces can be used here, else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun on this host"
    probe = f"f{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` fails: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def require():
    why = available()
    if why:
        raise harness.Skip(why)


def remove_stale():
    """Delete namespaces left by test runs whose process is gone."""
    for name in _netns_list():
        m = _STALE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class NetnsError(AssertionError):
    pass


class Topology:
    SUBNET = "10.77.0"
    HOST_A_IP = SUBNET + ".1"
    HOST_B_IP = SUBNET + ".2"
    GUEST_IP = SUBNET + ".10"
    CLIENT_IP = SUBNET + ".100"
    TAP = "tap0"

    def __init__(self, prefix=None):
        self.prefix = prefix if prefix is not None else f"f{os.getpid()}-"
        self.host_a = self.prefix + "host-a"
        self.host_b = self.prefix + "host-b"
        self.client = self.prefix + "client"
        self.lan = self.prefix + "ferry-lan"
        self.is_up = False

    # -- lifecycle -------------------------------------------------------------

    def _script(self, action, check=True):
        env = dict(os.environ, FERRY_NETNS_PREFIX=self.prefix, FERRY_NETNS_SUBNET=self.SUBNET)
        r = subprocess.run(["sh", str(SCRIPT), action], env=env, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise NetnsError(f"scripts/netns.sh {action} failed (status {r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")
        return r

    def up(self):
        require()
        remove_stale()
        self.is_up = True   # from here on, down() must run whatever happens
        self._start_reaper()
        self._script("up")
        return self

    def _start_reaper(self):
        """A watchdog outside our session: if this process is killed (a
        test runner's time limit sends SIGKILL, so no `finally` runs), it
        removes the namespaces once we are gone. It exits by itself."""
        env = dict(os.environ, FERRY_NETNS_PREFIX=self.prefix, FERRY_NETNS_SUBNET=self.SUBNET)
        script = ('while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
                  'exec sh "$2" down >/dev/null 2>&1')
        subprocess.Popen(["sh", "-c", script, "netns-reaper", str(os.getpid()), str(SCRIPT)],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)

    def down(self):
        if self.is_up:
            self.is_up = False
            self._script("down", check=False)

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, etype, exc, tb):
        self.down()
        return False

    # -- helpers ---------------------------------------------------------------

    def host_ns(self, host):
        """'a' / 'b' (or a namespace name) → the namespace name."""
        return {"a": self.host_a, "b": self.host_b}.get(host, host)

    def run(self, ns, argv, timeout=60, check=True, input=None):
        """Run argv inside namespace ns; returns the CompletedProcess (text)."""
        r = subprocess.run(["ip", "netns", "exec", ns, *map(str, argv)], capture_output=True,
                           text=isinstance(input, str) or input is None, input=input,
                           timeout=harness.scaled(timeout))
        if check and r.returncode != 0:
            raise NetnsError(f"in {ns}: {' '.join(map(str, argv))} exited {r.returncode}:\n"
                             f"{r.stdout}{r.stderr}")
        return r

    def popen(self, ns, argv, **kw):
        """Start argv inside namespace ns (subprocess.Popen keywords)."""
        return subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], **kw)

    def python(self, ns, code, *args, timeout=60, check=True):
        """Run a Python snippet inside ns with sys.argv[1:] = args."""
        return self.run(ns, [sys.executable, "-c", textwrap.dedent(code), *args],
                        timeout=timeout, check=check)

    def ping(self, ns, addr, count=3, timeout=30):
        """ICMP echo from ns to addr (raw socket; no ping binary needed).
        Returns the number of replies; raises NetnsError if fewer than count
        came back within timeout seconds (scaled)."""
        r = self.python(ns, _PING, addr, str(count), str(harness.scaled(timeout)),
                        timeout=timeout + 10, check=False)
        m = re.search(r"replies=(\d+)", r.stdout)
        got = int(m.group(1)) if m else 0
        if got < count:
            raise NetnsError(f"ping {addr} from {ns}: {got}/{count} replies\n{r.stdout}{r.stderr}")
        return got

    def guest_append(self, ip=None, extra="console=ttyS0 quiet"):
        return f"{extra} ferry.ip={ip or self.GUEST_IP}/24"

    def ferry(self, host, args=(), tap=None, mac=None, **kw):
        """A FerryVM (not started) running inside host 'a' or 'b' with a
        virtio-net card on that host's tap; args are more `ferry run`
        arguments (e.g. ["--append", t.guest_append()])."""
        net = f"tap={tap or self.TAP}" + (f",mac={mac}" if mac else "")
        vm = FerryVM(["--net", net, *args], **kw)
        vm.argv = ["ip", "netns", "exec", self.host_ns(host), *vm.argv]
        return vm


# ICMP echo over a raw socket: argv = addr count timeout. Prints replies=N.
_PING = r"""
import os, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

addr, count, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ident = os.getpid() & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline = time.monotonic() + limit
seen = set()
seq = 0
while len(seen) < count and time.monotonic() < deadline:
    seq += 1
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ferry-ping-%d" % seq
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (addr, 0))
    t_end = min(time.monotonic() + 1.0, deadline)
    while time.monotonic() < t_end:
        s.settimeout(max(t_end - time.monotonic(), 0.01))
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            break
        ihl = (data[0] & 0xF) * 4
        typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if src[0] == addr and typ == 0 and rid == ident:
            seen.add(rseq)
            print("reply seq=%d" % rseq, flush=True)
            if rseq == seq:
                break
print("replies=%d" % len(seen))
"""
