"""Several request clients at once on the guest's reqlog service, measured
from the client's side (tests/linux/test_replicate_clients.py,
bench/replicate.py).

    mc = MultiClient(topo, 10)          # 10 TCP connections from the client netns
    mc.wait_acked(20)                   # every connection has 20 ACKs
    ... switchover ...
    mc.stop()                           # final report of every connection
    mc.retransmits()                    # {conn: tcpi_total_retrans}
    mc.max_gap_around(t0, t1)           # longest gap between ACKs overlapping [t0, t1]
    mc.check_log(text)                  # every ACKed request once, in order, per conn

Connection k sends requests numbered k * STRIDE + 1, + 2, ... one after
another (each after the previous ACK), the payload of replication.payload().
Times are CLOCK_MONOTONIC of this machine (namespaces share it).
Retransmissions are read from the kernel (TCP_INFO's tcpi_total_retrans,
the counter `ss -ti` shows as retrans:X/TOTAL) at the end.

Standard library only.
"""

import json
import subprocess
import sys
import threading
import time

import harness
from replication import AWAIT_ACK, SERVICE_PORT, _ns_prefix, check_request_log

STRIDE = 1_000_000

# argv: addr port nconn connect_timeout request_timeout. Prints JSON lines:
# {"event":"connected","c":K}, {"event":"ack","c":K,"n":N,"t":T,"sent":T0},
# {"event":"final","c":K,"error":..,"sent":[...],"retrans":R,"rto_us":U}.
# A line on stdin (or its end) stops every connection after its request in
# flight; "info\n" prints {"event":"info","c":K,"retrans":R,"rto_us":U}.
CLIENT = AWAIT_ACK + r"""
import json, socket, struct, sys, threading, time
addr, port, nconn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit, req_timeout = float(sys.argv[4]), float(sys.argv[5])
STRIDE = 1000000
lock = threading.Lock()
def say(**kw):
    with lock:
        print(json.dumps(kw), flush=True)
def payload(n):
    return "req%d-%08x" % (n, (n * 2654435761) % (1 << 32))
def tcp_info(s):
    # struct tcp_info: u32 tcpi_rto at byte 8, tcpi_total_retrans at byte 100.
    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", b, 100)[0], struct.unpack_from("I", b, 8)[0]
stop = threading.Event()
socks = {}
def conn(k):
    deadline = time.monotonic() + limit
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=2)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                say(event="final", c=k, error="cannot connect: %s" % e, sent=[], retrans=0, rto_us=0)
                return
            time.sleep(0.2)
    socks[k] = s
    s.settimeout(0.05)
    say(event="connected", c=k)
    n, buf, error, sent = k * STRIDE, b"", None, []
    while not stop.is_set() and error is None:
        n += 1
        t0 = time.monotonic()
        s.sendall(("%d %s\n" % (n, payload(n))).encode())
        sent.append(n)
        buf, error = await_ack(s, n, buf, t0, req_timeout)
        if error is None:
            say(event="ack", c=k, n=n, t=time.monotonic(), sent=t0)
    retrans, rto = tcp_info(s)
    say(event="final", c=k, error=error, sent=sent, retrans=retrans, rto_us=rto)
threads = [threading.Thread(target=conn, args=(k,)) for k in range(nconn)]
for t in threads:
    t.start()
for line in sys.stdin:
    if line.strip() != "info":
        break
    for k, s in list(socks.items()):
        try:
            r, rto = tcp_info(s)
        except OSError:
            continue
        say(event="info", c=k, retrans=r, rto_us=rto)
stop.set()
for t in threads:
    t.join()
"""


class MultiClient:
    """nconn request connections from the topology's client namespace."""

    def __init__(self, topo, nconn=10, port=SERVICE_PORT, connect_timeout=60, request_timeout=60):
        argv = [*_ns_prefix(topo, topo.client), sys.executable, "-c", CLIENT, topo.GUEST_IP,
                str(port), str(nconn), str(harness.scaled(connect_timeout)),
                str(harness.scaled(request_timeout))]
        self.nconn = nconn
        self.acks = {k: [] for k in range(nconn)}      # [(n, t_ack, t_sent)]
        self.final = {}
        self.info = {}
        self.connected = set()
        self.lock = threading.Lock()
        self.info_event = threading.Event()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, process_group=0)
        self.stderr_text = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            ev, k = msg.get("event"), msg.get("c")
            with self.lock:
                if ev == "connected":
                    self.connected.add(k)
                elif ev == "ack":
                    self.acks[k].append((msg["n"], msg["t"], msg["sent"]))
                elif ev == "final":
                    self.final[k] = msg
                elif ev == "info":
                    self.info[k] = msg
                    if len(self.info) == self.nconn:
                        self.info_event.set()

    def _read_err(self):
        for raw in self.proc.stderr:
            self.stderr_text += raw.decode("utf-8", "replace")

    def trouble(self):
        with self.lock:
            for k, f in self.final.items():
                if f.get("error"):
                    return f"connection {k}: {f['error']}"
        if self.proc.poll() is not None and len(self.final) < self.nconn:
            return f"the client exited early: {self.stderr_text[-2000:]}"
        return None

    def describe(self):
        with self.lock:
            return "; ".join(f"c{k}: {len(a)} acked" for k, a in self.acks.items())

    def acked_counts(self):
        with self.lock:
            return [len(a) for a in self.acks.values()]

    def wait_acked(self, each, timeout=60, what=None):
        """Wait until every connection has at least `each` ACKs."""
        deadline = time.monotonic() + harness.scaled(timeout)
        while min(self.acked_counts()) < each:
            t = self.trouble()
            if t:
                raise AssertionError(f"clients: {t}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"clients: {what or 'requests not acknowledged'}: waited "
                                     f"{harness.scaled(timeout):.0f} s for {each} ACKs each\n"
                                     f"{self.describe()}")
            time.sleep(0.05)

    def tcp_info(self, timeout=10):
        """{conn: (total retransmits, rto in us)} now, from the kernel."""
        self.info_event.clear()
        with self.lock:
            self.info = {}
        self.proc.stdin.write(b"info\n")
        self.proc.stdin.flush()
        self.info_event.wait(harness.scaled(timeout))
        with self.lock:
            return {k: (v["retrans"], v["rto_us"]) for k, v in self.info.items()}

    def stop(self, timeout=60):
        """Stop every connection (after its request in flight); returns the
        final reports."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=harness.scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.1)
        t = self.trouble()
        if t:
            raise AssertionError(f"clients: {t}\n{self.describe()}")
        assert len(self.final) == self.nconn, f"{len(self.final)} final reports: {self.stderr_text}"
        return self.final

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def retransmits(self):
        return {k: f["retrans"] for k, f in self.final.items()}

    def gaps_around(self, t0, t1):
        """{conn: longest gap (s) between consecutive ACKs that overlaps
        [t0, t1]}, counting from the last ACK before t0."""
        out = {}
        with self.lock:
            for k, a in self.acks.items():
                times = sorted(t for _, t, _ in a)
                best = 0.0
                for x, y in zip(times, times[1:]):
                    if y >= t0 and x <= t1:
                        best = max(best, y - x)
                out[k] = best
        return out

    def gap_across(self, t):
        """{conn: (last ACK before t, first ACK after t)}: the wait that
        spans the instant t (None where either is missing)."""
        out = {}
        with self.lock:
            for k, a in self.acks.items():
                times = sorted(x for _, x, _ in a)
                before = [x for x in times if x <= t]
                after = [x for x in times if x > t]
                out[k] = (before[-1], after[0]) if before and after else None
        return out

    def normal_gaps(self, t_from, t_to):
        """Every gap between consecutive ACKs of a connection inside
        [t_from, t_to], all connections together (seconds)."""
        out = []
        with self.lock:
            for a in self.acks.values():
                times = sorted(x for _, x, _ in a if t_from <= x <= t_to)
                out += [y - x for x, y in zip(times, times[1:])]
        return out

    def first_ack_after(self, t0):
        """{conn: time of its first ACK after t0 (or None)}."""
        with self.lock:
            return {k: next((t for _, t, _ in sorted(a, key=lambda x: x[1]) if t > t0), None)
                    for k, a in self.acks.items()}

    def check_log(self, text, where):
        """Every connection's ACKed requests are in the log once, in order."""
        lines = {k: [] for k in range(self.nconn)}
        for line in text.splitlines():
            num = line.strip().split(" ", 1)[0]
            if num.isdigit() and int(num) // STRIDE in lines:
                lines[int(num) // STRIDE].append(line)
        total = 0
        for k in range(self.nconn):
            acked = [n for n, _, _ in self.acks[k]]
            total += len(check_request_log("\n".join(lines[k]), self.final[k]["sent"], acked,
                                           f"{where} (connection {k})"))
        return total
