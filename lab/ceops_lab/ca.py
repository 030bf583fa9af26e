"""Key material of a running lab: its own CA, the HTTPS server certificate, the token
signing certificate and the automation identities' client certificates.

Everything is generated locally with `cryptography`; nothing here is a real Microsoft key.
"""

import base64
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# 2048-bit keys: what Entra and most customers use, and fast enough to generate at every start.
KEY_SIZE = 2048


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path, data):
    # Private keys are 0600 from the first byte on, not chmod-ed after being written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def thumbprints(cert):
    """The identifiers Entra matches a client assertion's x5t / x5t#S256 header against."""
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der).digest()  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515)
    sha256 = hashlib.sha256(der).digest()
    return {"x5t": b64url(sha1), "x5t#S256": b64url(sha256), "sha1_hex": sha1.hex().upper(), "sha1_raw": sha1}


class CertificateAuthority:
    """The lab's CA. Kept across restarts of the same state dir, so a ca.pem that a client
    already loaded stays valid; the server certificate is re-issued at every start."""

    def __init__(self, key, cert):
        self.key = key
        self.cert = cert

    @classmethod
    def load_or_create(cls, state_dir):
        cert_path = os.path.join(state_dir, "ca.pem")
        key_path = os.path.join(state_dir, "ca-key.pem")
        if os.path.exists(cert_path) and os.path.exists(key_path):
            try:
                with open(key_path, "rb") as handle:
                    key = serialization.load_pem_private_key(handle.read(), password=None)
                with open(cert_path, "rb") as handle:
                    cert = x509.load_pem_x509_certificate(handle.read())
                if cert.not_valid_after_utc > _now() + datetime.timedelta(days=30):
                    return cls(key, cert)
            except (ValueError, TypeError):
                pass  # unreadable or foreign files: make a new CA below
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ceops lab CA"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ceops lab")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(key_path, key_pem(key))
        with open(cert_path, "wb") as handle:
            handle.write(cert_pem(cert))
        return cls(key, cert)

    def issue_server_cert(self, state_dir):
        """Server certificate for 127.0.0.1 and localhost; returns (cert_path, key_path)."""
        key = _new_key()
        now = _now()
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = os.path.join(state_dir, "server.pem")
        key_path = os.path.join(state_dir, "server-key.pem")
        with open(cert_path, "wb") as handle:
            handle.write(cert_pem(cert) + cert_pem(self.cert))
        _write_private(key_path, key_pem(key))
        return cert_path, key_path


class SelfSignedIdentity:
    """A key pair with a self-signed certificate: the token signing key, or an application's
    client certificate (Entra only stores the public certificate, never the private key)."""

    def __init__(self, key, cert):
        self.key = key
        self.cert = cert
        self.thumbprints = thumbprints(cert)

    @classmethod
    def create(cls, common_name, days=730):
        key = _new_key()
        now = _now()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, path, common_name, days=730):
        """Reuse the key pair stored at `path` (key + certificate PEM) while its certificate is
        valid for another 30 days; otherwise create one and store it there."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            key = serialization.load_pem_private_key(data, password=None)
            cert = x509.load_pem_x509_certificate(data)
            if cert.not_valid_after_utc > _now() + datetime.timedelta(days=30):
                return cls(key, cert)
        except (OSError, ValueError, TypeError):
            pass
        identity = cls.create(common_name, days=days)
        identity.write_pem(path)
        return identity

    @property
    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write_pem(self, path):
        """Private key + certificate in one PEM, the form AZURE_CLIENT_CERTIFICATE_PATH expects."""
        _write_private(path, key_pem(self.key) + cert_pem(self.cert))
        return path
