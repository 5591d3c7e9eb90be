"""redis-py over TLS (``ssl=True``) against a node serving a TLS port.

The certificates are made for the run with the ``openssl`` command: a CA, a node certificate
for ``127.0.0.1``/``localhost``, and a client certificate. The node serves TLS only (``port
0`` with a TLS port, as in Redis) with ``tls-auth-clients yes`` (the default), so a client
must present a certificate the CA signed.
"""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from conftest import CellkvNode, _binary

# Extensions for the test CA and the certificates it signs; the leaf serves both ends.
OPENSSL_CONFIG = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = cellkv test CA
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_pki(directory: Path):
    (directory / "openssl.cnf").write_text(OPENSSL_CONFIG)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-config", "openssl.cnf", "-extensions", "ca_ext", cwd=directory)
    for name in ("node", "client"):
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-config", "openssl.cnf", "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", "openssl.cnf", "-extensions", "leaf_ext", cwd=directory)


@pytest.fixture(scope="module")
def pki():
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test certificates")
    directory = Path(tempfile.mkdtemp(prefix="cellkv-tls-"))
    try:
        _make_pki(directory)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_node(pki):
    # The conftest node's `--port 0` with a TLS port: no plain port, so no plain PING.
    node = CellkvNode(_binary(), ping=False, extra_args=[
        "--tls-port", "0",
        "--tls-cert-file", str(pki / "node.crt"),
        "--tls-key-file", str(pki / "node.key"),
        "--tls-ca-cert-file", str(pki / "ca.crt"),
    ])
    try:
        assert node.tls_port == node.port, "TLS only: the ready line names the TLS port"
        deadline = time.monotonic() + 60
        while True:
            try:
                with _client(node, pki, 2) as c:
                    c.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield node
    finally:
        node.stop()


def _client(node, pki, protocol, with_cert=True):
    extra = {}
    if with_cert:
        extra = {"ssl_certfile": str(pki / "client.crt"), "ssl_keyfile": str(pki / "client.key")}
    return redis.Redis(
        host="127.0.0.1", port=node.tls_port, protocol=protocol, decode_responses=True,
        socket_timeout=10, ssl=True, ssl_ca_certs=str(pki / "ca.crt"),
        ssl_check_hostname=True, **extra,
    )


def test_ssl_client_with_a_certificate_sets_and_gets(tls_node, pki, protocol):
    with _client(tls_node, pki, protocol) as c:
        assert c.ping()
        assert c.set("tls:py", "secret-free value", ex=60)
        assert c.get("tls:py") == "secret-free value"
        assert c.ttl("tls:py") == 60
    # Another TLS connection sees the same keyspace.
    with _client(tls_node, pki, protocol) as other:
        assert other.get("tls:py") == "secret-free value"


def test_ssl_client_without_a_certificate_is_refused(tls_node, pki, protocol):
    with _client(tls_node, pki, protocol) as c:
        assert c.ping(), "TLS is served to a client with a certificate"
    with _client(tls_node, pki, protocol, with_cert=False) as c:
        with pytest.raises(redis.ConnectionError):
            c.ping()
