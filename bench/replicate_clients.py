"""The "clients" part of bench/replicate.py: replication as 10 TCP clients
see it (issue 14's figures). Run through `bench/replicate.py --parts
clients` (or with the other parts).

 1. Request latency with 10 connections to reqlog (port 7000, each with one
    request outstanding), unreplicated and replicated at 10, 25 and 100 ms:
    the latency output commit adds (median and p99 of t_ack - t_sent).
 2. Switchovers and failovers (kill -9), alternating hosts, each with 10
    fresh connections: per move, the client-side stall (each connection's
    wait across the instant the guest paused for the last checkpoint, less
    the median gap between replies in the second before: what the move cost
    beyond normal replicated operation), retransmissions (the kernel's
    tcpi_total_retrans of every connection, as `ss -ti` shows), and for a
    failover the first reply after the kill (the latest connection's).
 3. With an etcd arbiter (3 members in the client namespace, TTL 2 s): the
    renewal round trip and rate, and the request latency at 25 ms compared
    with the same run without arbiter (what lease renewal costs).

Targets (issue 14): switchover client stall <= 10 ms median; no
retransmission at switchover; failover first reply within heartbeat
timeout + 250 ms.
"""

import re
import shutil
import signal
import statistics
import time

import benchlib as bl
import harness
from etcdcluster import EtcdCluster
from multiclient import MultiClient

CLIENTS = 10
PORT = 7000
TTL_S = 2
TARGET_STALL_MS = 10.0
TARGET_FAILOVER_SLACK_MS = 250.0


def _pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else None


def _latency(b, seconds):
    """10 connections for `seconds`: request latencies (ms) after a 1 s warm-up."""
    mc = MultiClient(b.topo, CLIENTS, port=PORT)
    try:
        mc.wait_acked(3, timeout=60)
        t0 = time.monotonic() + 1.0
        time.sleep(seconds + 1.0)
        t1 = time.monotonic()
        mc.stop()
    finally:
        mc.close()
    lat = [(ta - ts) * 1000 for a in mc.acks.values() for _, ta, ts in a if t0 <= ta <= t1]
    return {"requests": len(lat), "median_ms": statistics.median(lat) if lat else None,
            "p99_ms": _pct(lat, 99), "per_s": len(lat) / (t1 - t0)}


def _move(b, kind, args, n, extra=()):
    src, dst = b.primary, OTHER[b.where]
    hb = f"{args.heartbeat_timeout:g}ms"
    sb, uri = b.standby(dst, ["--heartbeat-timeout", hb, *extra])
    try:
        b.replicate(uri, args.interval)
    except _error as e:
        raise _error(f"{e}\n--- standby stderr ---\n{harness.tail(sb.stderr(), 10)}") from None
    mc = MultiClient(b.topo, CLIENTS, port=PORT)
    rec = {"kind": kind, "n": n, "from": b.where, "to": dst, "clients": CLIENTS}
    try:
        mc.wait_acked(15, timeout=60)
        before = mc.tcp_info()
        t0 = time.monotonic()
        if kind == "switchover":
            res = harness.run_cmd([b.ferry, "switchover", src.control], timeout=60)
            if res.rc != 0:
                raise _error(f"ferry switchover failed\n{res.describe()}")
            m = re.search(r"downtime (at most )?([\d.]+) ms", res.stdout)
            rec["downtime_ms"] = float(m.group(2)) if m else None
            rec["downtime_measured"] = bool(m and not m.group(1))
            src.wait_exit(30)
        else:
            t_kill = time.monotonic()
            src.proc.send_signal(signal.SIGKILL)
            src.wait_exit(10)
        harness_wait = time.monotonic() + harness.scaled(60)
        while "guest resumed from" not in sb.stderr():
            if time.monotonic() > harness_wait or sb.proc.poll() is not None:
                raise _error(f"the standby did not take over:\n{sb.stderr()}")
            time.sleep(0.005)
        sb.wait_control(30)
        resumed = sb.status()["resumed_at_monotonic_ns"] / 1e9
        mc.wait_acked(min(mc.acked_counts()) + 10, timeout=60)
        final = mc.stop()
    finally:
        mc.close()
    normal = sorted(mc.normal_gaps(t0 - 1.0, t0))
    normal_med = statistics.median(normal) if normal else 0.0
    rec["normal_gap_ms"] = normal_med * 1000
    rec["retransmits"] = sum(final[k]["retrans"] - before.get(k, (0, 0))[0] for k in final)
    if kind == "switchover":
        t_pause = resumed - (rec["downtime_ms"] or 0) / 1000
        waits = [(g[1] - g[0]) for g in mc.gap_across(t_pause).values() if g]
        stalls = [max(0.0, w - normal_med) * 1000 for w in waits]
        rec["stall_ms_median"] = statistics.median(stalls) if stalls else None
        rec["stall_ms_max"] = max(stalls) if stalls else None
        rec["wait_ms_max"] = max(waits) * 1000 if waits else None
        bl.log(f"[clients {kind} {n}] downtime {rec['downtime_ms']} ms; client stall median "
               f"{rec['stall_ms_median']:.1f} ms, max {rec['stall_ms_max']:.1f} ms (normal gap "
               f"{rec['normal_gap_ms']:.1f} ms); retransmissions {rec['retransmits']}")
    else:
        firsts = [t for t in mc.first_ack_after(t_kill).values() if t]
        rec["first_reply_ms"] = (max(firsts) - t_kill) * 1000 if firsts else None
        rec["takeover_ms"] = (resumed - t_kill) * 1000
        rec["heartbeat_timeout_ms"] = args.heartbeat_timeout
        bl.log(f"[clients {kind} {n}] standby resumed {rec['takeover_ms']:.0f} ms after the kill; "
               f"last connection's first reply {rec['first_reply_ms']:.0f} ms after; "
               f"retransmissions {rec['retransmits']}")
    b.primary, b.where = sb, dst
    return rec


OTHER = {"a": "b", "b": "a"}


class BenchError(Exception):
    """Replaced by bench/replicate.py's own (run(error_cls=...)), which its
    parts loop catches."""


_error = BenchError


def run(b, results, args, error_cls=BenchError):
    """Fills results["clients"]; failures raise error_cls."""
    global _error
    _error = error_cls
    out = results.setdefault("clients", {"latency": [], "moves": [], "arbiter": None})
    window = args.window
    base = _latency(b, window)
    base["interval_ms"] = None
    out["latency"].append(base)
    bl.log(f"[clients] unreplicated: median {base['median_ms']:.1f} ms, p99 {base['p99_ms']:.1f} ms")
    for iv in (10.0, 25.0, 100.0):
        sb, uri = b.standby(OTHER[b.where])
        b.replicate(uri, iv)
        time.sleep(1.0)
        lat = _latency(b, window)
        lat["interval_ms"] = iv
        out["latency"].append(lat)
        bl.log(f"[clients] replicated every {iv:g} ms: median {lat['median_ms']:.1f} ms, p99 "
               f"{lat['p99_ms']:.1f} ms")
        b.stop_replication(sb)
    n = max(5, args.switchovers)
    for i in range(n):
        out["moves"].append(_move(b, "switchover", args, i + 1))
    for i in range(max(5, args.failovers)):
        out["moves"].append(_move(b, "failover", args, i + 1))
    if not shutil.which("etcd"):
        bl.log("[clients] etcd is not installed: no arbiter figures (./setup installs it)")
        return
    # The arbiter: a fresh primary that holds a lease.
    etcd = EtcdCluster(b.topo)
    etcd.start()
    try:
        arb = ["--arbiter", etcd.url("bench-vm"), "--lease-ttl", str(TTL_S)]
        b.primary_extra = arb
        b.reset()
        sb, uri = b.standby(OTHER[b.where], arb)
        b.replicate(uri, 25.0)
        time.sleep(1.0)
        lat = _latency(b, window)
        a = b.primary.status()["arbiter"]
        ref = next(x for x in out["latency"] if x["interval_ms"] == 25.0)
        out["arbiter"] = {"ttl_s": TTL_S, "renewals_per_s": 3 / TTL_S,
                          "last_renew_ms": a["last_renew_ms"], "max_renew_ms": a["max_renew_ms"],
                          "renewals": a["renewals"], "renew_failures": a["renew_failures"],
                          "latency_median_ms": lat["median_ms"], "latency_p99_ms": lat["p99_ms"],
                          "latency_median_without_ms": ref["median_ms"]}
        bl.log(f"[clients] with the arbiter: renewal round trip {a['last_renew_ms']:.1f} ms "
               f"(max {a['max_renew_ms']:.1f}), request median {lat['median_ms']:.1f} ms "
               f"(without: {ref['median_ms']:.1f} ms)")
        b.stop_replication(sb)
        out["moves"].append(_move(b, "failover", args, 1, extra=arb) | {"arbiter": True})
    finally:
        b.primary_extra = []
        etcd.close()


def report(results):
    c = results.get("clients")
    if not c:
        return
    rows = []
    base = next((x for x in c["latency"] if x["interval_ms"] is None), None)
    for x in c["latency"]:
        added = (x["median_ms"] - base["median_ms"]) if base and x["interval_ms"] else None
        rows.append(["unreplicated" if x["interval_ms"] is None else f"{x['interval_ms']:g} ms",
                     f"{x['per_s']:.0f}", f"{x['median_ms']:.1f}", f"{x['p99_ms']:.1f}",
                     "-" if added is None else f"{added:+.1f}"])
    bl.print_table(f"request latency, {CLIENTS} connections (one outstanding request each)",
                   ["interval", "req/s", "median ms", "p99 ms", "added by output commit"], rows,
                   ["Each request is an fsync in the guest: unreplicated it reaches the host's "
                    "disk, replicated it completes at once (disk writes are held and committed "
                    "per epoch), so output commit's cost shows against a guest that fsyncs "
                    "for real and can come out negative."])
    so = [m for m in c["moves"] if m["kind"] == "switchover"]
    fo = [m for m in c["moves"] if m["kind"] == "failover" and not m.get("arbiter")]
    rows = []
    if so:
        med = bl.Summary([m["stall_ms_median"] for m in so])
        mx = bl.Summary([m["stall_ms_max"] for m in so])
        rt = sum(m["retransmits"] for m in so)
        rows.append(["switchover", len(so), f"{med.median:.1f}", f"{mx.max:.1f}", rt,
                     f"stall median <= {TARGET_STALL_MS:g} ms: "
                     f"{'yes' if med.median <= TARGET_STALL_MS else 'NO'}; no retransmission: "
                     f"{'yes' if rt == 0 else 'NO'}"])
    if fo:
        fr = bl.Summary([m["first_reply_ms"] for m in fo])
        hb = fo[0]["heartbeat_timeout_ms"]
        ok = fr.max is not None and fr.max <= hb + TARGET_FAILOVER_SLACK_MS
        rows.append(["failover (kill -9)", len(fo), f"{fr.median:.1f}", f"{fr.max:.1f}",
                     sum(m["retransmits"] for m in fo),
                     f"first reply <= heartbeat {hb:g} + {TARGET_FAILOVER_SLACK_MS:g} ms: "
                     f"{'yes' if ok else 'NO'}"])
    bl.print_table(f"moves as {CLIENTS} clients see them (switchover: stall beyond the normal "
                   f"gap; failover: latest first reply after the kill)",
                   ["move", "n", "median ms", "max ms", "retransmits", "target"], rows)
    a = c.get("arbiter")
    if a:
        fa = [m for m in c["moves"] if m.get("arbiter")]
        bl.print_table("etcd arbiter (3 members, lease TTL 2 s, renewed every TTL/3)",
                       ["renewals/s", "renewal RTT ms (last/max)", "failures",
                        "request median ms (with / without)", "failover first reply ms"],
                       [[f"{a['renewals_per_s']:.1f}",
                         f"{a['last_renew_ms']:.1f} / {a['max_renew_ms']:.1f}",
                         a["renew_failures"],
                         f"{a['latency_median_ms']:.1f} / {a['latency_median_without_ms']:.1f}",
                         f"{fa[0]['first_reply_ms']:.0f}" if fa else "n/a"]],
                       ["With an arbiter a failover waits for the old lease to end (up to the "
                        "TTL): that is its price."])
