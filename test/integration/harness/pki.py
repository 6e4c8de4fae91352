# Test PKI for the harness: a throw-away root CA and a server certificate for
# pebble's own HTTPS listener, plus helpers to inspect served certificates.
import datetime
import ipaddress
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mod_acme test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _write(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class ListenerPKI:
    """Root CA + leaf for localhost/127.0.0.1/::1, written as PEM files."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_file = os.path.join(directory, "test-root.pem")
        self.cert_file = os.path.join(directory, "listener-cert.pem")
        self.key_file = os.path.join(directory, "listener-key.pem")

    def generate(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now - datetime.timedelta(hours=1)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("mod_acme test listener root")
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        _write(self.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(self.cert_file, leaf.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(self.key_file, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), 0o600)
        return self


def load_pem_certs(pem):
    """All certificates in a PEM text, in order."""
    if isinstance(pem, bytes):
        pem = pem.decode("ascii")
    # cryptography 38 (Debian 12) has no load_pem_x509_certificates().
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                        pem, re.DOTALL)
    return [x509.load_pem_x509_certificate(b.encode("ascii")) for b in blocks]


def cert_sans(cert):
    """DNS names of a certificate's subjectAltName, sorted."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return sorted(ext.value.get_values_for_type(x509.DNSName))


def cert_issuer_cn(cert):
    attrs = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def cert_serial_hex(cert):
    return "%x" % cert.serial_number
