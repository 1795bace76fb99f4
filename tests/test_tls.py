"""Services across hosts you can trust: TLS 1.3 both ways, the secret's session bound by MACs,
and a relay on the path that can neither read, change nor inject (ukernel/ipc/tls.py, tcp.py).

The relay is a test-only man in the middle on loopback: the kernel dials it, it dials the
node, and it forwards every byte, recording them; armed, it flips a byte of the next chunk
one way, replays one it can see, or writes bytes of its own into the stream.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import stat
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio
from conftest import FORKS_AFTER_A_LOSS, KILL_POINT, program
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

import services
import ukernel
from services import SERVICES, settings_of
from services.pid import PidService
from services.vfs import VfsService
from ukernel import abi, keys
from ukernel.config import Config, load_config
from ukernel.ipc import node as node_server
from ukernel.ipc import protocol, tcp, tls
from ukernel.ipc.router import BootError
from ukernel.ipc.service import op

SECRET = b"tls-test-secret"
TIMEOUT = 30
DEFAULTS = {name: settings_of(name, Config()) for name in SERVICES}
PASSWORD = b"my password is hunter2"
WRITER = program(
    """
    from ukernel.abi import O_CREAT, O_WRONLY

    async def main(sys, argv):
        fd = await sys.open("/secret", O_WRONLY | O_CREAT)
        await sys.write(fd, b"my password is hunter2")
        await sys.close(fd)
        await sys.write(1, b"written\\n")
        return 0
    """
)
UP, DOWN = "up", "down"  # kernel -> node, node -> kernel


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET.decode())


class Relay:
    """A man in the middle: forwards between its clients and ``target``, and records the bytes."""

    def __init__(self, target: str):
        self.target = target
        self.seen = {UP: bytearray(), DOWN: bytearray()}
        self.flip = {UP: False, DOWN: False}  # flip the last byte of the next chunk going that way
        self.replay_up: bytes | None = None  # send the next chunk to the node holding these bytes twice
        self.streams: dict[str, trio.abc.Stream] = {}  # the latest connection's, to inject into
        self.sending = trio.Lock()  # the pipe to the node and inject take turns

    async def serve(self, listen: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners, url = await node_server.open_listeners(listen)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._relay, listeners)
            task_status.started(url)

    async def inject(self, data: bytes) -> None:
        """Bytes of the relay's own into the stream to the node."""
        async with self.sending:
            await self.streams[UP].send_all(data)

    async def _relay(self, client: trio.abc.Stream) -> None:
        server = await tcp.open_stream(self.target)
        self.streams[UP] = server
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pipe, client, server, UP, nursery.cancel_scope)
            nursery.start_soon(self._pipe, server, client, DOWN, nursery.cancel_scope)

    async def _pipe(self, src, dst, way: str, scope: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                self.seen[way] += data
                if self.flip[way]:
                    self.flip[way] = False
                    data = data[:-1] + bytes([data[-1] ^ 0x01])
                copies = 1
                if way == UP and self.replay_up and self.replay_up in data:
                    self.replay_up, copies = None, 2
                async with self.sending if way == UP else contextlib.nullcontext():
                    for _ in range(copies):
                        await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()  # one side gone: the relay hangs up both


class Spy(PidService):
    """A pid server that records every ``probe`` it is asked: an injected request would show."""

    probes: list[int] = []

    @op
    async def probe(self, req) -> str:
        Spy.probes.append(req.msgid)
        return "probed"


def ca(directory: Path, *names: str) -> str:
    keys.init_ca(directory)
    for name in names:
        keys.issue(name, directory)
    return str(directory)


def foreign_identity(directory: Path, trusted: str, name: str) -> str:
    """A keys directory that trusts ``trusted``'s CA but shows a certificate for ``name`` from
    another CA: what a stranger who copied our ca.pem has."""
    ca(directory / "issuer", name)
    directory.joinpath("ca.pem").write_bytes(Path(trusted, "ca.pem").read_bytes())
    for suffix in ("pem", "key"):
        directory.joinpath(f"{name}.{suffix}").write_bytes((directory / "issuer" / f"{name}.{suffix}").read_bytes())
    return str(directory)


async def serve(nursery, services, listen: str, auth: tcp.Auth, **kw) -> str:
    return await nursery.start(
        partial(node_server.serve_services, services, listen, auth, settings=DEFAULTS, heartbeat=0.1, **kw)
    )


def node_auth(mode: str, keys_dir: str, name: str = "127.0.0.1") -> tcp.Auth:
    if mode == "tls":
        return tcp.Auth(keys=tls.load(keys_dir, name))
    return tcp.Auth(SECRET)


async def relayed(nursery, mode: str, keys_dir: str, tmp_path: Path, services) -> tuple[Relay, str, str]:
    """A node (TLS on loopback TCP, or the secret on a Unix socket) and a relay in front of it."""
    listen = "tcp://127.0.0.1:0" if mode == "tls" else f"unix:{tmp_path / 'node.sock'}"
    url = await serve(nursery, services, listen, node_auth(mode, keys_dir))
    relay = Relay(url)
    front = "tcp://127.0.0.1:0" if mode == "tls" else f"unix:{tmp_path / 'relay.sock'}"
    return relay, url, await nursery.start(relay.serve, front)


def kernel_settings(mode: str, keys_dir: str) -> dict:
    return {"tls": keys_dir} if mode == "tls" else {}


# --- what a relay cannot do -------------------------------------------------------------------------
async def test_a_relay_cannot_read_a_payload_written_through_tls(tmp_path, tls_keys):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            relay, _, front = await relayed(nursery, "tls", tls_keys, tmp_path, [VfsService()])
            result = await ukernel.run_async(
                "/bin/w", ["w"], files={"/bin/w": WRITER}, remote={"vfs": front}, tls=tls_keys
            )
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.stdout, result.problems) == (0, b"written\n", [])
    assert len(relay.seen[UP]) > 10_000  # the program (and /bin) went through it
    assert PASSWORD not in relay.seen[UP] and b"hunter2" not in relay.seen[DOWN]
    assert b"vfs.write" not in relay.seen[UP]  # not even which op


async def test_without_tls_the_secret_authenticates_but_does_not_hide(tmp_path, tls_keys):
    """The control of the test above: on a Unix socket the same relay reads the payload (and
    docs/distributed.md says so), so the test above can fail."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            relay, _, front = await relayed(nursery, "secret", tls_keys, tmp_path, [VfsService()])
            result = await ukernel.run_async("/bin/w", ["w"], files={"/bin/w": WRITER}, remote={"vfs": front})
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.stdout, result.problems) == (0, b"written\n", [])
    assert PASSWORD in relay.seen[UP]


@pytest.mark.parametrize("mode", ["tls", "secret"])
@pytest.mark.parametrize("way", [DOWN, UP], ids=["reply-changed", "request-changed"])
async def test_a_byte_changed_on_the_way_fails_the_connection_with_eio_and_the_node_survives(
    mode, way, tmp_path, tls_keys, caplog
):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            relay, url, front = await relayed(nursery, mode, tls_keys, tmp_path, [PidService()])

            def console(data: bytes) -> None:
                if data == KILL_POINT:  # authenticated and running: now the relay changes a byte
                    relay.flip[way] = True

            result = await ukernel.run_async(
                "/bin/t",
                ["t"],
                files={"/bin/t": FORKS_AFTER_A_LOSS},
                remote={"pid": front},
                console=console,
                heartbeat=0.1,
                rpc_timeout=2.0,
                **kernel_settings(mode, tls_keys),
            )
            # the node is still there: a kernel that dials it directly runs
            direct = await ukernel.run_async("hello", remote={"pid": url}, **kernel_settings(mode, tls_keys))
            nursery.cancel_scope.cancel()
    assert result.stdout.startswith(b"go\nfork: errno 5\nfork: errno 5\nfork: errno 5\n"), result.stdout
    assert result.status != 0 and f"lost pid at {front} ({url}): " in result.error, result.error
    assert (direct.exit_code, direct.problems) == (0, [])
    if way == UP:  # the node saw the record fail and dropped only that peer
        assert "dropping peer" in caplog.text


@pytest.mark.parametrize("mode", ["tls", "secret"])
async def test_a_relay_cannot_inject_a_request(mode, tmp_path, tls_keys, caplog):
    Spy.probes = []
    forged = protocol.encode_request(77, "pid.probe", {}, {})
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            relay, _, front = await relayed(nursery, mode, tls_keys, tmp_path, [Spy()])
            async with ukernel.boot(remote={"pid": front}, **kernel_settings(mode, tls_keys)) as kernel:
                assert await kernel.call("pid", "ping", {}) == "pid"
                # as a record of the right length with a made-up tag (TLS: a bare message)
                header = len(forged).to_bytes(4, "big")
                await relay.inject(forged if mode == "tls" else header + forged + b"\x00" * 32)
                with pytest.raises(OSError) as err:
                    with trio.fail_after(5):
                        while True:  # the connection fails: calls get EIO
                            await kernel.call("pid", "ping", {})
                            await trio.sleep(0.01)
                assert err.value.errno == abi.EIO
            nursery.cancel_scope.cancel()
    assert Spy.probes == []
    assert "dropping peer" in caplog.text


async def test_a_replayed_record_fails_the_secret_session(tmp_path, tls_keys, caplog):
    Spy.probes = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            relay, _, front = await relayed(nursery, "secret", tls_keys, tmp_path, [Spy()])
            async with ukernel.boot(remote={"pid": front}) as kernel:
                relay.replay_up = b"pid.probe"  # (readable: the secret's records are not encrypted)
                try:  # the first copy is the real one; its reply may not make it before the node hangs up
                    assert await kernel.call("pid", "probe", {}) == "probed"
                except OSError as exc:
                    assert exc.errno == abi.EIO
                with pytest.raises(OSError) as err, trio.fail_after(5):
                    while True:
                        await kernel.call("pid", "ping", {})
                        await trio.sleep(0.01)
                assert err.value.errno == abi.EIO
            nursery.cancel_scope.cancel()
    # never twice (the real one may share a read with its copy: the node then drops both with the connection)
    assert len(Spy.probes) <= 1
    assert "failed its MAC: changed, replayed or injected" in caplog.text


# --- who is refused -------------------------------------------------------------------------------
async def test_a_certificate_from_another_ca_is_refused_both_ways(tmp_path, tls_keys, caplog):
    other = foreign_identity(tmp_path / "other", tls_keys, "kernel")
    foreign_node = foreign_identity(tmp_path / "node", tls_keys, "127.0.0.1")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, [PidService()], "tcp://127.0.0.1:0", node_auth("tls", tls_keys))
            with pytest.raises(BootError) as kernel_from_other_ca:  # the node refuses the kernel
                await ukernel.run_async("hello", remote={"pid": url}, tls=other)
            stranger = await serve(nursery, [PidService()], "tcp://127.0.0.1:0", node_auth("tls", foreign_node))
            with pytest.raises(BootError) as node_from_other_ca:  # the kernel refuses the node
                await ukernel.run_async("hello", remote={"pid": stranger}, tls=tls_keys)
            nursery.cancel_scope.cancel()
    assert str(kernel_from_other_ca.value) == (  # (the server's alert is not flushed by trio: an EOF is what comes)
        f"remote: pid at {url}: tls: the server hung up in the handshake (did it refuse our certificate, "
        f"{other}/kernel.pem?)"
    )
    assert f"tls: the client's certificate is not from the CA in {tls_keys}" in caplog.text
    assert str(node_from_other_ca.value) == (
        f"remote: pid at {stranger}: tls: the server's certificate is not from the CA in {tls_keys}"
    )


async def test_a_certificate_for_another_name_is_refused(tls_keys):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, [PidService()], "tcp://127.0.0.1:0", node_auth("tls", tls_keys))
            port = url.rsplit(":", 1)[1]
            with pytest.raises(BootError, match="tls: the server's certificate is not for the name dialled") as wrong:
                await ukernel.run_async("hello", remote={"pid": f"tcp://localhost:{port}"}, tls=tls_keys)
            # a node showing a certificate of another (the kernel's, from the same CA) is refused too
            impostor = await serve(nursery, [PidService()], "tcp://127.0.0.1:0", node_auth("tls", tls_keys, "kernel"))
            with pytest.raises(BootError, match="tls: the server's certificate is not for the name dialled"):
                await ukernel.run_async("hello", remote={"pid": impostor}, tls=tls_keys)
            nursery.cancel_scope.cancel()
    assert "'localhost'" in str(wrong.value)


async def test_a_node_dialling_its_callee_checks_the_callee_as_the_kernel_does(tmp_path, tls_keys):
    """namespaces (a node) dials pid and vfs: with TLS, and refusing one with a foreign certificate."""
    other = ca(tmp_path / "other", "127.0.0.1")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            good = await serve(nursery, [PidService(), VfsService()], "tcp://127.0.0.1:0", node_auth("tls", tls_keys))
            bad = await serve(nursery, [PidService(), VfsService()], "tcp://127.0.0.1:0", node_auth("tls", other))
            auth = node_auth("tls", tls_keys)
            namespaces = [services.build("namespaces", Config())]
            ns = await serve(nursery, namespaces, "tcp://127.0.0.1:0", auth, remote={"pid": good, "vfs": good})
            remote = {"namespaces": ns, "pid": good, "vfs": good}
            result = await ukernel.run_async("forktest", ["forktest", "2"], remote=remote, tls=tls_keys)
            refused = []
            try:
                namespaces = [services.build("namespaces", Config())]
                await serve(nursery, namespaces, "tcp://127.0.0.1:0", auth, remote={"pid": bad, "vfs": bad})
            except* BootError as group:
                refused = [str(e) for e in group.exceptions]
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.problems) == (0, [])
    assert refused == [f"remote: pid at {bad}: tls: the server's certificate is not from the CA in {tls_keys}"]


async def test_a_server_that_does_not_know_the_secret_is_refused_by_the_kernel(tmp_path):
    """The handshake is mutual: a server that says ok without the secret cannot prove it."""

    async def liar(stream):
        conn = tcp.FramedStream(stream)
        await conn.send_obj(
            {
                "proto": "ukernel-rpc",
                "version": 2,
                "auth": "secret",
                "nonce": b"n" * 32,
                "node": "x",
                "instance": "1",
                "services": {"pid": None},
            }
        )
        await conn.receive_obj()
        await conn.send_obj({"ok": True, "mac": b"\x00" * 32})
        await trio.sleep_forever()

    path = tmp_path / "liar.sock"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            listeners, url = await node_server.open_listeners(f"unix:{path}")
            await nursery.start(trio.serve_listeners, liar, listeners)
            with pytest.raises(BootError) as refused:
                await ukernel.run_async("hello", remote={"pid": url})
            nursery.cancel_scope.cancel()
    assert str(refused.value) == (
        f"remote: pid at {url}: the server does not know our secret (bad HMAC in its verdict) "
        "(the secrets differ: UKERNEL_SECRET or --secret-file)"
    )


async def test_plain_tcp_needs_insecure_and_insecure_needs_loopback():
    auth = tcp.Auth(SECRET)
    with pytest.raises(ValueError, match="^plain TCP is refused: give --tls DIR"):
        auth.mode("tcp://127.0.0.1:7001")
    with pytest.raises(ValueError, match="^plain TCP is refused"):
        await node_server.serve_services([PidService()], "tcp://127.0.0.1:0", auth)
    insecure = tcp.Auth(SECRET, insecure=True)
    assert [insecure.mode(u) for u in ("tcp://127.0.0.1:1", "tcp://localhost:1", "tcp://[::1]:1", "unix:/x")] == [
        "secret"
    ] * 4
    for url in ("tcp://10.0.0.2:7001", "tcp://0.0.0.0:7001", "tcp://example.org:7001"):
        with pytest.raises(ValueError, match="^--insecure: plain TCP only on loopback"):
            insecure.mode(url)
    with pytest.raises(ValueError, match="^remote: pid at tcp://127.0.0.1:1: plain TCP is refused"):
        await ukernel.run_async("hello", remote={"pid": "tcp://127.0.0.1:1"})


async def test_a_kernel_without_tls_meets_a_tls_node_with_one_line_each_side(monkeypatch, tls_keys, caplog):
    monkeypatch.setattr(tcp, "HANDSHAKE_TIMEOUT", 0.5)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, [PidService()], "tcp://127.0.0.1:0", node_auth("tls", tls_keys))
            with pytest.raises(BootError, match=r"handshake failed: .*\(does it serve TLS\? then give --tls DIR\)$"):
                await ukernel.run_async("hello", remote={"pid": url}, insecure=True)
            while "refused peer" not in caplog.text:  # (no TLS handshake in time, or the client hung up first)
                await trio.sleep(0.01)  # the node's own handshake deadline may come after the kernel's
            nursery.cancel_scope.cancel()


def test_the_cli_says_a_foreign_certificate_in_one_line(tmp_path, tls_keys):
    other = foreign_identity(tmp_path / "other", tls_keys, "kernel")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    serve_cmd = [
        sys.executable,
        "-m",
        "ukernel.cli",
        "serve",
        "pid",
        "--listen",
        "tcp://127.0.0.1:0",
        "--tls",
        tls_keys,
    ]
    server = subprocess.Popen(serve_cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        url = server.stderr.readline().strip().rsplit(" on ", 1)[1]
        done = subprocess.run(
            [sys.executable, "-m", "ukernel.cli", "run", "--tls", other, "--remote", f"pid={url}", "hello"],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
    finally:
        server.terminate()
        server.wait(timeout=TIMEOUT)
    assert (done.returncode, done.stderr) == (
        2,
        f"ukernel: --remote: pid at {url}: tls: the server hung up in the handshake (did it refuse our "
        f"certificate, {other}/kernel.pem?)\n",
    )


def test_the_toml_keys_of_tls(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text('tls = "keys"\ntls_name = "node-a"\ninsecure = true\n')
    assert load_config(config) == {"tls": str(tmp_path / "keys"), "tls_name": "node-a", "insecure": True}
    config.write_text('insecure = "yes"\n')
    with pytest.raises(ValueError, match="insecure: must be true or false, not 'yes'$"):
        load_config(config)


# --- ukernel keys --------------------------------------------------------------------------------
def test_keys_makes_a_ca_and_certificates_naming_their_host(tmp_path):
    directory = tmp_path / "k"
    keys.init_ca(directory)
    keys.issue("127.0.0.1", directory)
    keys.issue("node-a.example", directory)
    for name in ("ca", "127.0.0.1", "node-a.example"):
        assert stat.S_IMODE((directory / f"{name}.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((directory / "127.0.0.1.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["127.0.0.1"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    named = x509.load_pem_x509_certificate((directory / "node-a.example.pem").read_bytes())
    alt = named.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert (alt.get_values_for_type(x509.DNSName), alt.get_values_for_type(x509.IPAddress)) == (["node-a.example"], [])
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    named.verify_directly_issued_by(ca_cert)
    with pytest.raises(FileExistsError, match="has a CA already"):
        keys.init_ca(directory)
    with pytest.raises(FileExistsError, match="remove 127.0.0.1.pem and 127.0.0.1.key"):
        keys.issue("127.0.0.1", directory)
    with pytest.raises(ValueError, match="is not a host name or an address"):
        keys.issue("../escape", directory)


def test_tls_load_names_the_missing_file(tmp_path):
    directory = tmp_path / "k"
    keys.init_ca(directory)
    with pytest.raises(
        ValueError,
        match=rf"^tls: {directory}/kernel.pem: no such file \(make it with `ukernel keys issue kernel {directory}`\)$",
    ):
        tls.load(directory, "kernel")


# --- the records ---------------------------------------------------------------------------------
@given(
    frames=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5),
    at=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_a_record_stream_with_any_bit_flipped_fails_or_waits_never_delivers_other_bytes(frames, at, bit):
    send, receive = tcp.FrameMac(b"k1", b"k2"), tcp.FrameMac(b"k2", b"k1")
    wire = bytearray(b"".join(send.seal(f) for f in frames))
    assert receive.open(bytearray(wire)) == b"".join(frames)  # untouched: every byte, once
    receive = tcp.FrameMac(b"k2", b"k1")
    wire[at % len(wire)] ^= 1 << bit
    try:
        got = receive.open(wire)
    except ValueError:
        return
    assert b"".join(frames).startswith(got) and got != b"".join(frames)  # a longer length: still waiting


def test_records_replayed_or_reordered_fail():
    send = tcp.FrameMac(b"k1", b"k2")
    first, second = send.seal(b"one"), send.seal(b"two")
    for wire in (first + first, second + first):
        with pytest.raises(ValueError, match="failed its MAC"):
            tcp.FrameMac(b"k2", b"k1").open(bytearray(wire))
    big = send.seal(b"x" * (tcp.RECORD_MAX + 5))  # a long write is several records
    receive = tcp.FrameMac(b"k2", b"k1")
    receive.received = 2
    assert receive.open(bytearray(big)) == b"x" * (tcp.RECORD_MAX + 5)
