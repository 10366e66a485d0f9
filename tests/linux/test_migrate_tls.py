"""Migration and replication over TLS 1.3 with mutual authentication
(tls:HOST:PORT, --tls-cert/--tls-key/--tls-ca or --tls-psk).

Credentials are made in each test with the openssl command: a CA, a
certificate for each side (issued for 127.0.0.1), and a second CA with a
certificate of its own that the first does not trust. Everything runs on
loopback.

- the guest moves (--verify) with certificates and with a pre-shared key,
  and the report names the TLS channel;
- a replicated VM switches over to a tls: standby, with certificates given
  to `ferry run` and with a pre-shared key given to `ferry replicate`;
- a tls: destination refuses a plain source, a source whose certificate
  another CA signed, a TLS client without a certificate, and a different
  pre-shared key: each with a clear message, and the source runs on and
  then migrates with the right credentials;
- a relay that records the TCP bytes finds a marker the guest wrote into its
  RAM in a plain migration, and nowhere in a TLS one.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import Skip, require_guest, timeout  # noqa: E402
from migration import (LOCALHOST, IncomingVM, SourceVM, assert_source_alive,  # noqa: E402
                       ctl, free_port, migrate, wait_for, wait_migration)
from replication import PrimaryVM, StandbyVM, wait_protected  # noqa: E402

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]


# --------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------

class Credentials:
    """A temporary directory with ca, src, dst (signed by ca), evilca and
    evil (signed by evilca), and two pre-shared keys psk and psk2."""

    def __init__(self):
        if not shutil.which("openssl"):
            raise Skip("the openssl command is not installed (./setup installs it)")
        self.dir = tempfile.mkdtemp(prefix="ftls-")
        self._ca("ca")
        self._cert("src", "ca")
        self._cert("dst", "ca")
        self._ca("evilca")
        self._cert("evil", "evilca")
        for name in ("psk", "psk2"):
            path = self.path(name)
            with open(path, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            os.chmod(path, 0o600)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        res = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True)
        assert res.returncode == 0, f"openssl {' '.join(args)} failed:\n{res.stderr}"

    def _ca(self, name):
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-days", "2", "-subj", f"/CN=ferry test {name}",
                      "-keyout", f"{name}.key", "-out", f"{name}.crt")

    def _cert(self, name, ca):
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-subj", f"/CN=ferry test {name}", "-keyout", f"{name}.key",
                      "-out", f"{name}.csr")
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                      f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                      "-out", f"{name}.crt")

    def certs(self, name, ca="ca"):
        """--tls-cert/--tls-key/--tls-ca options for side `name`."""
        return ["--tls-cert", self.path(f"{name}.crt"), "--tls-key", self.path(f"{name}.key"),
                "--tls-ca", self.path(f"{ca}.crt")]

    def psk(self, name="psk"):
        return ["--tls-psk", self.path(name)]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class TlsIncomingVM(IncomingVM):
    """`ferry run --incoming tls:127.0.0.1:PORT CREDENTIALS...`."""

    def __init__(self, creds, port=None, name="destination", **kw):
        port = port or free_port()
        SourceVM.__init__(self, ["--incoming", f"tls:{LOCALHOST}:{port}", *creds], name=name, **kw)
        self.port = port
        self.uri = f"tls:{LOCALHOST}:{port}"


def source(*args, **kw):
    require_guest()
    return SourceVM([*MEM, *args], **kw)


def write_marker(vm, marker):
    """Fills 2 MiB of the guest's tmpfs (guest RAM) with copies of marker;
    returns the file's checksum line as the guest computes it."""
    vm.run(f"yes {marker} | head -c 2097152 > /tmp/marker")
    return vm.run("md5sum /tmp/marker").strip()


def check_marker(vm, want):
    vm.wait_prompt()
    got = vm.run("md5sum /tmp/marker").strip()
    assert got == want, f"the guest's /tmp/marker after the move: {got!r}, before: {want!r}"


def check_tls_report(rep, mode):
    channel = rep.get("channel", "")
    assert channel.startswith("TLSv1.3") and mode in channel, (
        f"the report's channel is {channel!r}, expected TLS 1.3 with {mode}")
    assert "kTLS" in channel or "user space" in channel, channel


# --------------------------------------------------------------------------
# Migration
# --------------------------------------------------------------------------

@timeout(300)
def test_tls_migrate_certificates():
    with Credentials() as c, source() as src, TlsIncomingVM(c.certs("dst")) as dst:
        src.boot(BOOT_TIMEOUT)
        want = write_marker(src, "certificates-4f1c")
        dst.wait_listening()
        res, rep = migrate(src.control, dst.uri, "--verify", *c.certs("src"))
        check_tls_report(rep, "certificates verified both ways")
        assert rep.get("verified"), rep
        dst.wait_resumed()
        assert "accepted a peer over TLSv1.3" in dst.stderr(), dst.stderr()
        check_marker(dst, want)


@timeout(300)
def test_tls_migrate_psk():
    with Credentials() as c, source() as src, TlsIncomingVM(c.psk()) as dst:
        src.boot(BOOT_TIMEOUT)
        want = write_marker(src, "psk-77aa")
        dst.wait_listening()
        _, rep = migrate(src.control, dst.uri, "--verify", *c.psk())
        check_tls_report(rep, "pre-shared key")
        dst.wait_resumed()
        check_marker(dst, want)


def wait_dropped(dst, timeout=60):
    """The destination refused a peer: it logs why and keeps waiting for the
    real source (a stray or hostile connection must not end the wait).
    Returns the logged line."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        lines = [ln for ln in dst.stderr().splitlines() if "dropped a connection" in ln]
        if lines:
            break
        assert time.monotonic() < deadline, f"destination logged no refusal:\n{dst.stderr()}"
        time.sleep(0.1)
    assert dst.proc.poll() is None, f"destination ended instead of waiting:\n{dst.stderr()}"
    assert "guest resumed from" not in dst.stderr(), dst.stderr()
    return lines[-1]


def refused_migration(src, dst, *opts):
    """Migrates src to dst (which must refuse): returns (the source's
    error, the destination's line); the source must run on."""
    dst.wait_listening()
    res, rep = migrate(src.control, dst.uri, *opts, expect_ok=False, timeout=120)
    assert res.rc != 0 and rep and rep.get("state") == "failed", (
        f"the migration did not fail\n{res.describe()}")
    line = wait_dropped(dst)
    assert_source_alive(src)
    return rep.get("error", ""), line


@timeout(420)
def test_tls_destination_refuses_bad_peers():
    with Credentials() as c, source() as src:
        src.boot(BOOT_TIMEOUT)
        want = write_marker(src, "refusals-0b3e")

        # A plain source.
        with TlsIncomingVM(c.certs("dst")) as dst:
            uri = f"tcp:{LOCALHOST}:{dst.port}"
            dst.wait_listening()
            res, rep = migrate(src.control, uri, expect_ok=False, timeout=120)
            assert res.rc != 0, res.describe()
            line = wait_dropped(dst)
            assert "refused a plain (unencrypted) migration stream" in line, line
            assert_source_alive(src)
            # The destination told the plain source why, in its own stream format.
            assert rep and "accepts only TLS" in rep.get("error", ""), res.describe()

        # A source whose certificate another CA signed.
        with TlsIncomingVM(c.certs("dst")) as dst:
            err, line = refused_migration(src, dst, *c.certs("evil", ca="ca"))
            assert "certificate did not verify" in line, line
            assert "refused our credentials" in err, err

        # A destination the source does not trust (the source checks too).
        with TlsIncomingVM(c.certs("evil", ca="ca")) as dst:
            err, line = refused_migration(src, dst, *c.certs("src"))
            assert "refused the destination" in err and "did not verify" in err, err
            assert "refused our credentials" in line, line

        # A TLS client that presents no certificate at all.
        with TlsIncomingVM(c.certs("dst")) as dst:
            dst.wait_listening()
            client = subprocess.run(
                ["openssl", "s_client", "-connect", f"{LOCALHOST}:{dst.port}", "-tls1_3",
                 "-CAfile", c.path("ca.crt"), "-quiet"],
                input="FERRYMIG", capture_output=True, text=True,
                timeout=harness.scaled(30))
            line = wait_dropped(dst)
            assert "presented no certificate" in line, f"{line}\nopenssl: {client.stderr}"

        # A different pre-shared key.
        with TlsIncomingVM(c.psk("psk")) as dst:
            err, line = refused_migration(src, dst, *c.psk("psk2"))
            assert "pre-shared keys differ" in line, line
            assert "refused" in err, err

        # The source is intact: the right credentials move it.
        with TlsIncomingVM(c.certs("dst")) as dst:
            dst.wait_listening()
            migrate(src.control, dst.uri, "--verify", *c.certs("src"))
            dst.wait_resumed()
            check_marker(dst, want)


@timeout(300)
def test_tls_cancel_keeps_source():
    """A cancel in the middle of a (slow) TLS migration ends the session;
    the destination gives up, the source runs on and then moves."""
    with Credentials() as c, source(*c.certs("src")) as src:
        src.boot(BOOT_TIMEOUT)
        want = write_marker(src, "cancel-3c9d")
        with TlsIncomingVM(c.certs("dst")) as dst:
            dst.wait_listening()
            # The VM's own credentials (ferry run --tls-*): none in the request.
            r = ctl(src.control, "migrate", f"uri={dst.uri}", "bandwidth=2000000")
            assert r.get("ok") is True, r
            mig = wait_migration(src.control, ("active",))
            assert mig.get("channel", "").startswith("TLSv1.3"), mig
            time.sleep(1)
            assert ctl(src.control, "migrate-cancel").get("ok") is True
            mig = wait_migration(src.control, ("cancelled", "failed", "completed"))
            assert mig["state"] == "cancelled", mig
            dst.wait_failed(60)
            assert_source_alive(src)
        with TlsIncomingVM(c.certs("dst")) as dst:
            dst.wait_listening()
            migrate(src.control, dst.uri, "--verify")
            dst.wait_resumed()
            check_marker(dst, want)


# --------------------------------------------------------------------------
# What is on the wire
# --------------------------------------------------------------------------

class CaptureRelay:
    """Relays one TCP connection from 127.0.0.1:.port to 127.0.0.1:dest_port
    unchanged, keeping every byte that passes in either direction."""

    def __init__(self, dest_port):
        self.dest_port = dest_port
        self.data = bytearray()
        self._lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def uri(self, scheme):
        return f"{scheme}:{LOCALHOST}:{self.port}"

    def _copy(self, a, b):
        try:
            while True:
                chunk = a.recv(1 << 16)
                if not chunk:
                    break
                with self._lock:
                    self.data += chunk
                b.sendall(chunk)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self):
        try:
            self.listener.settimeout(harness.scaled(300))
            a, _ = self.listener.accept()
            b = socket.create_connection((LOCALHOST, self.dest_port), timeout=harness.scaled(30))
            a.settimeout(None)
            b.settimeout(None)
            back = threading.Thread(target=self._copy, args=(b, a), daemon=True)
            back.start()
            self._copy(a, b)
            back.join(harness.scaled(60))
            a.close()
            b.close()
        except OSError:
            pass
        finally:
            self.listener.close()
            self.done.set()

    def captured(self):
        with self._lock:
            return bytes(self.data)


@timeout(420)
def test_tls_wire_carries_no_guest_pages():
    marker = "wire-" + os.urandom(12).hex()
    with Credentials() as c, source() as src:
        src.boot(BOOT_TIMEOUT)
        want = write_marker(src, marker)
        # The control: a plain migration shows the guest's pages on the
        # wire, so the relay does see them.
        with IncomingVM() as mid:
            mid.wait_listening()
            plain = CaptureRelay(mid.port)
            migrate(src.control, plain.uri("tcp"), "--verify")
            mid.wait_resumed()
            assert plain.done.wait(harness.scaled(60)), "the plain relay did not end"
            wire = plain.captured()
            assert marker.encode() in wire, (
                f"the plain migration's {len(wire)} bytes do not hold the guest's marker: the "
                f"relay does not see the pages")
            check_marker(mid, want)
            # Now over TLS, through the same kind of relay.
            with TlsIncomingVM(c.certs("dst")) as dst:
                dst.wait_listening()
                relay = CaptureRelay(dst.port)
                _, rep = migrate(mid.control, relay.uri("tls"), "--verify", *c.certs("src"))
                check_tls_report(rep, "certificates")
                dst.wait_resumed()
                assert relay.done.wait(harness.scaled(60)), "the TLS relay did not end"
                wire = relay.captured()
                assert len(wire) > 1 << 20, f"only {len(wire)} bytes went through the TLS relay"
                for needle in (marker.encode(), marker[:12].encode(), b"FERRYMIG"):
                    assert needle not in wire, (
                        f"{needle!r} is readable in the {len(wire)} bytes of the TLS migration")
                check_marker(dst, want)


# --------------------------------------------------------------------------
# Replication
# --------------------------------------------------------------------------

def replicate_tls(control, uri, *opts):
    res = harness.run_ferry(["replicate", control, uri, "--interval", "25ms", *opts],
                            timeout=180)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry replicate output")
    assert res.rc == 0 and "protected" in res.stdout, (
        f"ferry replicate over TLS did not protect the VM\n{res.describe()}")


def switch_and_check(p, s, want):
    wait_protected(p, epochs_after=3)
    res = harness.run_ferry(["switchover", p.control], timeout=120)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry switchover output")
    assert res.rc == 0, res.describe()
    kind, _ = s.wait_takeover(timeout=60)
    assert kind == "switchover", s.stderr()
    assert p.wait_exit(30) == 0, p.stderr()
    check_marker(s, want)


@timeout(300)
def test_tls_replicate_certificates():
    """The primary's and the standby's credentials come from their
    `ferry run --tls-*` options."""
    require_guest()
    with Credentials() as c:
        port = free_port()
        with PrimaryVM([*MEM, *c.certs("src")]) as p, \
                StandbyVM(f"tls:{LOCALHOST}:{port}", args=c.certs("dst")) as s:
            p.boot(BOOT_TIMEOUT)
            p.wait_control()
            want = write_marker(p, "replica-certs-91d0")
            s.wait_listening()
            replicate_tls(p.control, s.uri)
            assert "accepted a peer over TLSv1.3" in s.stderr(), s.stderr()
            switch_and_check(p, s, want)


@timeout(300)
def test_tls_replicate_psk():
    require_guest()
    with Credentials() as c:
        port = free_port()
        with PrimaryVM(MEM) as p, StandbyVM(f"tls:{LOCALHOST}:{port}", args=c.psk()) as s:
            p.boot(BOOT_TIMEOUT)
            p.wait_control()
            want = write_marker(p, "replica-psk-5e2b")
            s.wait_listening()
            replicate_tls(p.control, s.uri, *c.psk())
            assert "pre-shared key" in s.stderr(), s.stderr()
            switch_and_check(p, s, want)


def test_tls_options_checked():
    """Mistakes in the TLS options fail the command at once (no guest)."""
    with Credentials() as c:
        bad = [
            (["run", "--incoming", f"tls:{LOCALHOST}:1"], "needs credentials"),
            (["run", "--incoming", f"tls:{LOCALHOST}:1", "--tls-cert", c.path("src.crt")],
             "needs all of"),
            (["run", "--incoming", f"tls:{LOCALHOST}:1", *c.certs("src"), *c.psk()],
             "does not combine"),
            (["run", "--incoming", f"tls:{LOCALHOST}:1", "--tls-cert", c.path("src.crt"),
              "--tls-key", c.path("dst.key"), "--tls-ca", c.path("ca.crt")],
             "does not belong"),
            (["run", "--incoming", f"tls:{LOCALHOST}:1", "--tls-psk", c.path("nonexistent")],
             "no such file"),
            (["migrate", "/nonexistent.sock", f"tcp:{LOCALHOST}:1", *c.psk()],
             "need a tls:HOST:PORT"),
        ]
        os.chmod(c.path("psk2"), 0o644)
        bad.append((["run", "--incoming", f"tls:{LOCALHOST}:1", *c.psk("psk2")], "chmod 600"))
        with open(c.path("short"), "w") as f:
            f.write("abcd\n")
        os.chmod(c.path("short"), 0o600)
        bad.append((["run", "--incoming", f"tls:{LOCALHOST}:1", *c.psk("short")], "in hex"))
        for args, want in bad:
            res = harness.run_ferry(args, timeout=30)
            harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry output")
            assert res.rc == 2, f"expected a usage error (2) for {args}\n{res.describe()}"
            assert want in res.stderr, f"expected '{want}' for {args}\n{res.describe()}"
