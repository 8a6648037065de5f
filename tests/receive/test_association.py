"""Association policy with real dcmtk echoscu/storescu: calling-AE allow-list (with host pins),
association limit, unsupported SOP classes, and mutual TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydicom.uid import MRImageStorage
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_node.config import CallingAE, TLSSettings
from tests.receive.builders import fresh_ct
from tests.receive.scu import echoscu, send_datasets, storescu

REJECTED_CALLING = "Calling AE Title Not Recognized"


def test_echo_answers(sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url)
    result = echoscu(scp.port)
    assert result.returncode == 0 and "Received Echo Response (Success)" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("allowed", "calling", "accepted"),
    [
        ([CallingAE(ae_title="GOODSCU")], "GOODSCU", True),
        ([CallingAE(ae_title="GOODSCU")], "EVILSCU", False),
        ([CallingAE(ae_title="GOODSCU", host="127.0.0.1")], "GOODSCU", True),
        ([CallingAE(ae_title="GOODSCU", host="localhost")], "GOODSCU", True),
        ([CallingAE(ae_title="GOODSCU", host="10.9.9.9")], "GOODSCU", False),  # right AE, wrong host
        ([CallingAE(ae_title="OTHER", host="10.9.9.9"), CallingAE(ae_title="GOODSCU")], "GOODSCU", True),
    ],
    ids=["listed", "unlisted", "host pinned", "host by name", "wrong host", "second entry"],
)
def test_calling_ae_allow_list(allowed, calling, accepted, sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url, allowed_calling_aes=allowed)
    result = echoscu(scp.port, calling=calling)
    output = result.stdout + result.stderr
    if accepted:
        assert result.returncode == 0, output
    else:
        assert result.returncode != 0 and "Association Rejected" in output and REJECTED_CALLING in output, output


def test_association_limit_rejects_the_extra_association(sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url, max_associations=1)
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    held = ae.associate("127.0.0.1", scp.port, ae_title="PULMONODE")
    assert held.is_established
    try:
        result = echoscu(scp.port)
        assert result.returncode != 0 and "Local Limit Exceeded" in result.stdout + result.stderr
    finally:
        held.release()


def test_unsupported_sop_class_is_not_negotiated(sqlite_url, scp_factory, tmp_path):
    scp = scp_factory(sqlite_url)
    ds = fresh_ct()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    path = tmp_path / "mr.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = storescu(scp.port, [path])
    assert result.returncode != 0 and "No presentation context" in result.stdout + result.stderr
    assert scp.instances() == []


# --- mutual TLS --------------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False) -> x509.Certificate:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("pulmonode test CA", ca_key, _name("pulmonode test CA"), ca_key, ca=True)
    ca_path, _ = _write(tmp_path, "ca", ca, ca_key)
    files = {"ca": ca_path}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{role}_cert"], files[f"{role}_key"] = _write(tmp_path, role, _issue(role, key, ca.subject, ca_key), key)
    return files


def _client_context(pki: dict[str, Path], *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    if with_cert:
        context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    return context


def test_mutual_tls(pki, sqlite_url, scp_factory):
    """Client certificate required; a silent peer does not stall the listener for the others."""
    tls = TLSSettings(enabled=True, certfile=pki["server_cert"], keyfile=pki["server_key"], ca_file=pki["ca"])
    scp = scp_factory(sqlite_url, tls=tls)
    silent = socket.create_connection(("127.0.0.1", scp.port))  # connects, never says hello

    results = send_datasets(scp.port, [fresh_ct()], ssl_context=_client_context(pki, with_cert=True),
                            tls_host="127.0.0.1")
    assert [r.status for r in results] == [0]

    ae = AE(ae_title="NOCERT")
    ae.add_requested_context(Verification)
    no_cert = ae.associate("127.0.0.1", scp.port, tls_args=(_client_context(pki, with_cert=False), "127.0.0.1"))
    assert not no_cert.is_established
    assert echoscu(scp.port).returncode != 0  # plain TCP is refused too

    dcmtk_tls = echoscu(scp.port, "+tls", str(pki["client_key"]), str(pki["client_cert"]), "+cf", str(pki["ca"]))
    assert dcmtk_tls.returncode == 0, dcmtk_tls.stdout + dcmtk_tls.stderr
    assert len(scp.instances()) == 1
    silent.close()
