"""Migration with --compress (zstd page batches, delta-encoded re-sent pages).

- A guest with 24 MiB of compressible data in RAM moves three times: with
  --compress none, zstd, and auto on a 32 MB/s link (--bandwidth 32M),
  each with --verify. zstd must put fewer than half the bytes on the wire
  that none did; auto must have compressed on the slow link.
- A guest running pagepoke (one word of each of 4096 pages changes 20 times
  a second) moves live with --compress zstd and --verify: re-sent pages go
  as deltas, and pagepoke, which checks every word of every page, finds
  nothing wrong after the move.

Corrupt compressed or delta records from a peer: tests/cli/test_compress_input.py.
"""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import require_guest, timeout  # noqa: E402
from migration import IncomingVM, SourceVM, migrate, wait_for  # noqa: E402

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]


def checksum(vm, path):
    return vm.run(f"md5sum {path}").strip()


def hop(src_control, dst, *opts):
    dst.wait_listening()
    res, rep = migrate(src_control, dst.uri, "--verify", *opts)
    assert rep.get("verified"), rep
    dst.wait_resumed()
    print(res.stdout.strip(), flush=True)
    return rep


@timeout(480)
def test_compress_fewer_bytes_verified():
    require_guest()
    with SourceVM(MEM) as src:
        src.boot(BOOT_TIMEOUT)
        src.run("yes 'ferry compresses this line of guest memory' | head -c 25165824 > /tmp/text")
        want = checksum(src, "/tmp/text")
        with IncomingVM() as a:
            plain = hop(src.control, a, "--compress", "none")
            assert plain["compress"]["mode"] == "none", plain["compress"]
            assert plain["compress"]["zstd_records"] == 0, plain["compress"]
            with IncomingVM() as b:
                z = hop(a.control, b, "--compress", "zstd")
                assert z["compress"]["zstd_records"] > 0, z["compress"]
                assert z["wire_bytes"] * 2 < plain["wire_bytes"], (
                    f"zstd sent {z['wire_bytes']} bytes, none {plain['wire_bytes']}")
                with IncomingVM() as c:
                    auto = hop(b.control, c, "--compress", "auto", "--bandwidth", "32M")
                    zs = auto["compress"]
                    assert zs["mode"] == "auto" and zs["zstd_records"] > 0, zs
                    assert zs["zstd_in_bytes"] > 0.9 * zs["page_record_bytes"], (
                        f"auto on a 32 MB/s link compressed {zs['zstd_in_bytes']} of "
                        f"{zs['page_record_bytes']} bytes of page records: {zs}")
                    assert auto["wire_bytes"] * 2 < plain["wire_bytes"], (
                        f"auto sent {auto['wire_bytes']} bytes, none {plain['wire_bytes']}")
                    c.wait_prompt()
                    got = checksum(c, "/tmp/text")
                    assert got == want, f"/tmp/text after three moves: {got}, before: {want}"


_PP = re.compile(r"pagepoke: sweeps=(\d+) errors=(\d+)")


def pagepoke_status(vm):
    found = _PP.findall(vm.run("cat /tmp/pp.log"))
    assert found, "pagepoke has not reported yet"
    sweeps, errors = map(int, found[-1])
    return sweeps, errors


@timeout(420)
def test_compress_deltas_live():
    require_guest()
    with SourceVM(MEM) as src:
        src.boot(BOOT_TIMEOUT)
        if "not found" in src.run("command -v pagepoke || echo not found", check=False):
            raise AssertionError("the guest has no pagepoke: rebuild it (make guest)")
        src.run("pagepoke 16 20 </dev/null >/tmp/pp.log 2>&1 & echo started")
        wait_for(lambda: _PP.search(src.run("cat /tmp/pp.log")), 60, "pagepoke's first report")
        before, errors = pagepoke_status(src)
        assert errors == 0, src.run("cat /tmp/pp.log")
        with IncomingVM() as dst:
            rep = hop(src.control, dst, "--compress", "zstd", "--max-downtime", "50ms")
            zs = rep["compress"]
            assert rep["rounds"] >= 2, rep
            assert zs["delta_pages"] > 0, f"no page went as a delta: {zs}"
            assert zs["delta_bytes"] < zs["delta_pages"] * 1024, zs
            dst.wait_prompt()
            # pagepoke goes on sweeping and checking every page.
            time.sleep(2)
            after, errors = pagepoke_status(dst)
            log = dst.run("cat /tmp/pp.log")
            assert errors == 0 and "CORRUPTION" not in log, log
            assert after > before, f"pagepoke stopped: {before} -> {after} sweeps\n{log}"
