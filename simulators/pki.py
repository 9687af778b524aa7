"""Throwaway certificates for tests and the demo: a certificate authority, and server and client
certificates signed by it, made with the ``cryptography`` package (no ``openssl`` command line needed).

Keys are EC P-256 (Mosquitto 2.0 and OpenSSL 3 take them; they are made in milliseconds, where an RSA
key takes a noticeable fraction of a second). Certificates carry the extensions a strict verifier asks
for (key identifiers, key usage, extended key usage), so Python's and Mosquitto's default checks pass.
Nothing here is fit for a real installation: the CA key lies unencrypted next to its certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_BEFORE_NOW = datetime.timedelta(hours=1)
"""Certificates are valid from this long before now: a clock a little behind (a VM, a container whose
clock was just set) must not reject a certificate made a second ago."""

VALIDITY = datetime.timedelta(days=2)
"""How long a certificate stays valid: longer than any test run, short enough to be useless if leaked."""

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A certificate's name is also its file name, so it may not climb out of its directory."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and private key (PEM files); the key signs the certificates it issues."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate signed by a :class:`CertificateAuthority` and its private key (PEM files)."""

    cert_file: Path
    key_file: Path


def make_ca(directory: Path, *, name: str = "plantwatch test CA") -> CertificateAuthority:
    """Make a self-signed CA named ``name``, written as ``ca.crt`` and ``ca.key`` (mode 0600) in ``directory``.

    It may sign end-entity certificates only (path length 0), valid for :data:`VALIDITY`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before = _now() - VALID_BEFORE_NOW
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca = CertificateAuthority(cert_file=directory / "ca.crt", key_file=directory / "ca.key")
    _write(ca.key_file, _private_pem(key), mode=0o600)
    _write(ca.cert_file, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return ca


def issue(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    server: bool,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
) -> IssuedCertificate:
    """Issue a certificate signed by ``ca``, written as ``<name>.crt`` and ``<name>.key`` (mode 0600).

    ``server=True``: a TLS server certificate for ``hosts`` (host names and IP addresses, in the subject
    alternative name, which is what clients check). ``server=False``: a TLS client certificate whose
    common name is ``name`` (``hosts`` is not used). Valid from :data:`VALID_BEFORE_NOW` ago for
    :data:`VALIDITY`.
    """
    if not FILE_NAME.fullmatch(name):
        raise ValueError(f"certificate name {name!r} must match {FILE_NAME.pattern} (it is also a file name)")
    if server and not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    ca_key = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key_file}: not an EC private key made by make_ca")
    key = ec.generate_private_key(ec.SECP256R1())
    not_before = _now() - VALID_BEFORE_NOW
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certificates=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
        )
    certificate = builder.sign(ca_key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    issued = IssuedCertificate(cert_file=directory / f"{name}.crt", key_file=directory / f"{name}.key")
    _write(issued.key_file, _private_pem(key), mode=0o600)
    _write(issued.cert_file, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return issued


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    # An EC key signs (the TLS handshake, or certificates for a CA); it never encrypts.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    """An IP address entry for an address (clients compare an IP only with IP entries), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` created with ``mode``: a key is never readable by others, not even briefly."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as stream:
        os.fchmod(stream.fileno(), mode)  # an existing file keeps its old mode through os.open
        stream.write(data)
