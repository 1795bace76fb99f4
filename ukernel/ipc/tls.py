"""TLS 1.3 with both ends authenticated, for services reached over TCP (stdlib ssl on trio.SSLStream).

A keys directory (made by ``ukernel keys``, ukernel/keys.py) holds::

    DIR/ca.pem     the ukernel CA's certificate: every peer's certificate must be signed by it
    DIR/ca.key     the CA's key (0600): only ``ukernel keys issue`` needs it; keep it off the nodes
    DIR/NAME.pem   NAME's certificate, subjectAltName DNS:NAME (and IP:NAME when NAME is an address)
    DIR/NAME.key   NAME's private key (0600)

Both ends present a certificate and check the other's against DIR/ca.pem:
the server requires one from every client, the client also checks that the
server's certificate names the host it dialled. The TLS handshake happens
before any ukernel-rpc byte, so a peer that fails it is never read
(tcp.py's handshake follows it). Only TLS 1.3 is offered or accepted.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trio

#: verify codes of X509_V_ERR_* (openssl/x509_vfy.h) that mean "not signed by our CA"
NOT_FROM_CA = {2, 18, 19, 20, 21, 30}
NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
EXPIRED = {9, 10}  # not yet valid, expired

#: why a handshake failed, from the alert the other end sent or our own OpenSSL's reason
ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "{other} refused our certificate: {ours} is not from its CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "{other} refused our certificate ({ours})",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "{other} wants a certificate and got none",
    "CERTIFICATE_VERIFY_FAILED": "{other}'s certificate is not from the CA in {dir}",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "{other} sent no certificate (it must have one from the CA in {dir})",
    "WRONG_VERSION_NUMBER": "{other} does not speak TLS (served with --insecure, or not ukernel?)",
    "HTTP_REQUEST": "{other} does not speak TLS",
    "UNSUPPORTED_PROTOCOL": "{other} does not speak TLS 1.3",
    "TLSV1_ALERT_PROTOCOL_VERSION": "{other} does not speak TLS 1.3",
    "NO_PROTOCOLS_AVAILABLE": "{other} does not speak TLS 1.3",
    "UNEXPECTED_EOF_WHILE_READING": "{other} hung up in the handshake (did it refuse our certificate, {ours}?)",
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC": "a record from {other} failed its integrity check (changed on the way)",
    "TLSV1_ALERT_DECRYPT_ERROR": "{other} found a record changed on the way",
    "SSLV3_ALERT_BAD_RECORD_MAC": "{other} found a record changed on the way",
}


@dataclass(frozen=True)
class TlsKeys:
    """One end's TLS identity: the CA it trusts and its own key and certificate in ``directory``."""

    directory: Path
    name: str  # this end's certificate is directory/name.pem
    server: ssl.SSLContext = field(repr=False, compare=False)
    client: ssl.SSLContext = field(repr=False, compare=False)

    @property
    def cert(self) -> Path:
        return self.directory / f"{self.name}.pem"

    def explain(self, exc: BaseException, other: str) -> str:
        """'tls: the server's certificate is not from the CA in DIR': why a handshake failed,
        ``other`` naming the far end ("the server", "the client")."""
        err = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
        if isinstance(err, ssl.SSLCertVerificationError):
            code = err.verify_code
            if code in NOT_FROM_CA:
                return f"tls: {other}'s certificate is not from the CA in {self.directory}"
            if code in NAME_MISMATCH:
                return f"tls: {other}'s certificate is not for the name dialled ({err.verify_message})"
            if code in EXPIRED:
                return f"tls: {other}'s certificate is out of its validity dates ({err.verify_message})"
            return f"tls: {other}'s certificate: {err.verify_message}"
        if isinstance(err, ssl.SSLError):
            why = ALERTS.get(err.reason or "")
            if why is None:
                return f"tls: {other}: {err.reason or err}"
            return f"tls: {why.format(other=other, ours=self.cert, dir=self.directory)}"
        return f"tls: {other}: {exc or type(exc).__name__}"


def load(directory: str | Path, name: str) -> TlsKeys:
    """The keys of ``name`` in ``directory``; ValueError, one line, saying which file is wrong."""
    directory = Path(directory)
    ca, cert, key = directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}.key"
    for path, how in ((ca, f"ukernel keys init {directory}"), (cert, f"ukernel keys issue {name} {directory}")):
        if not path.is_file():
            raise ValueError(f"tls: {path}: no such file (make it with `{how}`)")
    contexts = []
    for purpose in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT):
        context = ssl.SSLContext(purpose)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED  # the server too: a client without our CA's certificate is refused
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ValueError(f"tls: {ca}: not a PEM certificate ({exc.reason})") from None
        try:
            context.load_cert_chain(cert, key)
        except FileNotFoundError:
            raise ValueError(
                f"tls: {key}: no such file (make it with `ukernel keys issue {name} {directory}`)"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            why = getattr(exc, "reason", None) or exc.strerror or exc
            raise ValueError(f"tls: {cert} and {key}: not a certificate and its key ({why})") from None
        if purpose == ssl.PROTOCOL_TLS_SERVER:
            context.num_tickets = 0  # no session resumption: every connection proves itself
        contexts.append(context)
    return TlsKeys(directory, name, *contexts)


async def client(stream: trio.abc.Stream, keys: TlsKeys, host: str) -> trio.SSLStream:
    """Our side of the TLS handshake as a client of ``host`` (its certificate must name it)."""
    tls = trio.SSLStream(stream, keys.client, server_hostname=host)
    await _handshake(tls)
    return tls


async def server(stream: trio.abc.Stream, keys: TlsKeys) -> trio.SSLStream:
    """Our side of the TLS handshake as the server: the client must show a certificate from our CA."""
    tls = trio.SSLStream(stream, keys.server, server_side=True)
    await _handshake(tls)
    return tls


async def _handshake(tls: trio.SSLStream) -> None:
    """The handshake; on any failure the transport is closed at once (no close_notify: there is
    no session to close) and the error goes up."""
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls.transport_stream)
        raise
