"""A 3-member etcd cluster for the replication arbiter's tests, on addresses
inside the test's namespaces: the members run in the topology's client
namespace on 10.77.0.201-203 (added to its lan0), so host-a and host-b
reach them over the LAN and a route inside one host can cut it off.

    with EtcdCluster(topo) as etcd:
        etcd.url("vm1")                  # etcd://10.77.0.201:2379,.../vm1
        etcd.stop_member(0)              # SIGSTOP (no answers, no FIN)
        etcd.cont_member(0)
        etcd.kill_member(1)
        etcd.cut(topo.host_a)            # unreachable routes to every member

Skips when etcd is not installed (./setup installs etcd-server). Every
member is killed (by PID) and its data directory removed on exit.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import harness

CLIENT_PORT = 2379
PEER_PORT = 2380


class EtcdCluster:
    def __init__(self, topo, n=3):
        self.etcd = shutil.which("etcd")
        if not self.etcd:
            raise harness.Skip("etcd is not installed (./setup installs etcd-server)")
        self.topo = topo
        self.ips = [f"{topo.SUBNET}.{201 + i}" for i in range(n)]
        self.procs = [None] * n
        self.dir = tempfile.mkdtemp(prefix="fetcd-")
        self.logs = [os.path.join(self.dir, f"m{i}.log") for i in range(n)]

    def url(self, key):
        return "etcd://" + ",".join(f"{ip}:{CLIENT_PORT}" for ip in self.ips) + "/" + key

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self, timeout=60):
        ns = self.topo.client
        for ip in self.ips:
            self.topo.run(ns, ["ip", "addr", "add", f"{ip}/24", "dev", "lan0"])
        cluster = ",".join(f"m{i}=http://{ip}:{PEER_PORT}" for i, ip in enumerate(self.ips))
        for i, ip in enumerate(self.ips):
            argv = [self.etcd, "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}"),
                    "--listen-client-urls", f"http://{ip}:{CLIENT_PORT}",
                    "--advertise-client-urls", f"http://{ip}:{CLIENT_PORT}",
                    "--listen-peer-urls", f"http://{ip}:{PEER_PORT}",
                    "--initial-advertise-peer-urls", f"http://{ip}:{PEER_PORT}",
                    "--initial-cluster", cluster, "--initial-cluster-state", "new",
                    "--initial-cluster-token", f"ferry-{os.getpid()}",
                    # Quick elections: the tests stop members on purpose.
                    "--heartbeat-interval", "50", "--election-timeout", "500"]
            log = open(self.logs[i], "wb")
            self.procs[i] = self.topo.popen(ns, argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
            log.close()
        deadline = time.monotonic() + harness.scaled(timeout)
        while not self.healthy():
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    raise AssertionError(f"etcd member {i} exited ({p.returncode}):\n"
                                         f"{self.log(i)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the etcd cluster did not become healthy:\n"
                                     f"{self.log(0)[-3000:]}")
            time.sleep(0.2)

    def healthy(self):
        """A quorum write works (asked inside the client namespace)."""
        r = self.topo.run(self.topo.client, ["etcdctl", "--endpoints",
                                             ",".join(f"{ip}:{CLIENT_PORT}" for ip in self.ips),
                                             "--command-timeout=2s", "put", "ferry-probe", "1"],
                          check=False, timeout=30)
        return r.returncode == 0

    def get(self, key):
        """KEY's value and create revision seen by a quorum read, or None."""
        r = self.topo.run(self.topo.client, ["etcdctl", "--endpoints",
                                             ",".join(f"{ip}:{CLIENT_PORT}" for ip in self.ips),
                                             "--command-timeout=2s", "get", key, "-w", "json"],
                          check=False, timeout=30)
        if r.returncode != 0:
            return None
        import json
        kvs = json.loads(r.stdout).get("kvs") or []
        if not kvs:
            return None
        import base64
        return base64.b64decode(kvs[0]["value"]).decode("utf-8", "replace"), kvs[0]["create_revision"]

    def log(self, i):
        try:
            with open(self.logs[i], "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop_member(self, i):
        os.kill(self.procs[i].pid, signal.SIGSTOP)

    def cont_member(self, i):
        os.kill(self.procs[i].pid, signal.SIGCONT)

    def kill_member(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    def cut(self, ns):
        """Every member unreachable from namespace ns (its sockets only:
        bridged guest traffic is not routed there)."""
        for ip in self.ips:
            self.topo.run(ns, ["ip", "route", "add", "unreachable", f"{ip}/32"])

    def uncut(self, ns):
        for ip in self.ips:
            self.topo.run(ns, ["ip", "route", "del", "unreachable", f"{ip}/32"], check=False)

    def close(self):
        for p in self.procs:
            if p and p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# Counts frames a ferry process writes into a tap (the frames the guest's
# host releases), in namespace ns: argv = tap mac. Prints "frames=N" after
# each line on stdin, and at its end.
TAP_WATCH = r"""
import socket, sys, threading
tap, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((tap, 0))
count = [0]
def loop():
    while True:
        data, addr = s.recvfrom(65536)
        # addr[2] is the packet type: 4 = PACKET_OUTGOING (from the bridge
        # to the tap, i.e. towards the VM); anything else came out of it.
        if addr[2] != 4 and data[6:12] == mac:
            count[0] += 1
threading.Thread(target=loop, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    print("frames=%d" % count[0], flush=True)
print("frames=%d" % count[0], flush=True)
"""


class TapWatch:
    """Frames from `mac` coming out of the VM side of a tap in ns."""

    def __init__(self, topo, ns, mac, tap="tap0"):
        import sys
        self.proc = topo.popen(ns, [sys.executable, "-c", TAP_WATCH, tap, mac],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"tap watcher did not start: {line}{self.proc.stderr.read()}")

    def count(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        return int(line.strip().split("=")[1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
