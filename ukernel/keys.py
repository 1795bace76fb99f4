"""``ukernel keys``: a small CA for a ukernel cluster, and a key and certificate for each node and kernel.

    ukernel keys init DIR          DIR/ca.pem and DIR/ca.key (the CA, 0600 key)
    ukernel keys issue NAME DIR    DIR/NAME.pem and DIR/NAME.key, signed by DIR's CA

The layout is ukernel/ipc/tls.py's. Certificates are X.509 v3 with EC P-256
keys: the CA's is a CA (basicConstraints, keyCertSign) valid CA_DAYS; each
issued one names NAME as its subjectAltName (a DNS name, and an IP address
when NAME is one), may serve and dial (extendedKeyUsage serverAuth and
clientAuth) and is valid CERT_DAYS. The stdlib's ssl only uses
certificates; making them is what the ``cryptography`` package is for.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import abi
from .mistakes import Say

CA_DAYS = 3650
CERT_DAYS = 825
NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}[A-Za-z0-9_])?$|^[0-9a-fA-F:]+$")  # a host name or an address


def init_ca(directory: str | os.PathLike) -> Path:
    """Make the CA in ``directory`` (created 0700 if missing); FileExistsError if it has one."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (directory / "ca.pem").exists() or (directory / "ca.key").exists():
        raise FileExistsError(f"{directory} has a CA already (ca.pem, ca.key): remove them to make a new one")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ukernel CA {directory.resolve().name}")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory / "ca.key", _private_pem(key), 0o600)
    _write(directory / "ca.pem", _cert_pem(cert), 0o644)
    return directory


def issue(name: str, directory: str | os.PathLike) -> tuple[Path, Path]:
    """NAME's key and certificate from the CA in ``directory``: (DIR/NAME.pem, DIR/NAME.key)."""
    if not NAME.match(name) or name in ("ca", ".", ".."):
        raise ValueError(f"{name!r} is not a host name or an address (letters, digits, . - _; not 'ca')")
    directory = Path(directory)
    try:
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{exc.filename}: no such file (make the CA with `ukernel keys init {directory}`)"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{directory}: ca.pem or ca.key is not a PEM certificate and key ({exc})") from None
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: remove {name}.pem and {name}.key to issue {name} again")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), CERT_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(_alt_names(name)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _private_pem(key), 0o600)
    _write(cert_path, _cert_pem(cert), 0o644)
    return cert_path, key_path


def _alt_names(name: str) -> list:
    """DNS:NAME, and IP:NAME when NAME is an address (a client dialling 127.0.0.1 checks the IP)."""
    names: list = [x509.DNSName(name)]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(name)))
    except ValueError:
        pass
    return names


def _builder(subject, issuer, public_key, days: int):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a host clock a little behind still accepts it
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_usage(cert_sign: bool):
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    """A new file created with ``mode`` from the start (a key is never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# --- the command ------------------------------------------------------------------------------
def cmd_keys(ns: argparse.Namespace) -> int:
    try:
        if ns.action == "init":
            directory = init_ca(ns.dir)
            print(f"ukernel: keys: made a CA in {directory}: ca.pem (give it to every node), ca.key (keep it here)")
        else:
            cert, key = issue(ns.name, ns.dir)
            print(f"ukernel: keys: issued {ns.name}: {cert} and {key} (with {Path(ns.dir) / 'ca.pem'}: --tls {ns.dir})")
    except (OSError, ValueError) as exc:
        text = str(exc) if not isinstance(exc, OSError) or exc.errno is None else _os_error(exc)
        Say.error(f"keys: {text}", exc)
        return 2
    return 0


def _os_error(exc: OSError) -> str:
    return f"{exc.filename}: {abi.named(exc.errno, exc.strerror)}" if exc.filename else abi.named(exc.errno, str(exc))
