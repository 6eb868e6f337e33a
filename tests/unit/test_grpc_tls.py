"""Internal gRPC over TLS, and mutual TLS: a client without the CA's certificate is refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from yiju.common.grpc import bind, channel, check_health, create_server
from yiju.common.settings import Settings
from yiju_infra.local.processes import free_port


def _cert(
    name: str,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    issuer: x509.Name | None = None,
    ca: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(tmp: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
    key_path, cert_path = tmp / f"{name}.key", tmp / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


async def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(tmp_path: Path) -> None:
    ca_key, ca_cert = _cert("yiju-test-ca", ca=True)
    _, ca_path = _write(tmp_path, "ca", ca_key, ca_cert)
    server_key, server_cert = _cert("localhost", ca_key, ca_cert.subject)
    s_key, s_cert = _write(tmp_path, "server", server_key, server_cert)
    client_key, client_cert = _cert("planning", ca_key, ca_cert.subject)
    c_key, c_cert = _write(tmp_path, "client", client_key, client_cert)
    port = free_port()
    server_settings = Settings(
        grpc_tls_cert=s_cert, grpc_tls_key=s_key, grpc_tls_ca=ca_path, grpc_host="127.0.0.1"
    )
    server, _ = create_server(server_settings)
    bind(server, server_settings, port)
    await server.start()
    try:
        client_settings = Settings(grpc_tls_cert=c_cert, grpc_tls_key=c_key, grpc_tls_ca=ca_path)
        async with channel(client_settings, f"localhost:{port}") as ch:
            assert await check_health(ch, timeout=5)
        no_client_cert = grpc.ssl_channel_credentials(
            root_certificates=ca_cert.public_bytes(serialization.Encoding.PEM)
        )
        async with grpc.aio.secure_channel(f"localhost:{port}", no_client_cert) as ch:
            assert not await check_health(ch, timeout=5)
        async with grpc.aio.insecure_channel(f"localhost:{port}") as ch:
            assert not await check_health(ch, timeout=5)
    finally:
        await server.stop(None)
