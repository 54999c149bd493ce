"""TLS (SPEC R1, §5 item 9): the FHIR base served by mod_ssl with the policy of
conf/bulkfhir-ssl.conf -- TLS 1.2 and 1.3 only, certificate verified by the
client (VERIFY_PEER against a throwaway CA), HSTS.

The stack is an ordinary devstack with one extra httpd conf (devstack
--extra-conf, no devstack change): mod_ssl, a Listen on a second port and an
SSL <VirtualHost> there.  The devstack's <Location /fhir> and BulkFhir*
directives are server-wide, so the TLS vhost inherits them; devstack's own
plain port only serves its readiness probe here.  The protocol, cipher and
HSTS lines are copied verbatim from conf/bulkfhir-ssl.conf, so this checks
the example's policy, not a private one.
"""
import datetime as dt
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import bfclient
from bfstack import REPO
from bfclient import check_exact, check_files, check_manifest_shape, run_export
from conftest import generate_and_load

MODDIR = "/usr/lib/apache2/modules"
EXAMPLE = REPO / "conf" / "bulkfhir-ssl.conf"
# directives of the example's TLS policy that the test server copies
POLICY_RE = re.compile(r"^(SSLProtocol|SSLCipherSuite|SSLHonorCipherOrder|SSLCompression|"
                       r"SSLSessionTickets|Header always set Strict-Transport-Security)\b")

pytestmark = pytest.mark.skipif(not Path(MODDIR, "mod_ssl.so").exists(),
                                reason="mod_ssl is not installed (Debian package apache2)")


# ---- a throwaway PKI ---------------------------------------------------------------
def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 (IP and CN), P-256 keys.
    Returns the paths (ca, cert, key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("bulkfhir test CA"))
          .issuer_name(_name("bulkfhir test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (d / "ca.pem", d / "server.pem", d / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def example_policy():
    lines = [ln.strip() for ln in EXAMPLE.read_text().splitlines() if POLICY_RE.match(ln.strip())]
    assert any(ln.startswith("SSLProtocol ") for ln in lines), "no SSLProtocol in %s" % EXAMPLE
    assert any(ln.startswith("SSLCipherSuite ") for ln in lines), lines
    assert any("Strict-Transport-Security" in ln for ln in lines), lines
    return lines


def tls_conf(d, port, ca, cert, key):
    policy = [ln for ln in example_policy() if not ln.startswith("Header ")]
    hsts = [ln for ln in example_policy() if ln.startswith("Header ")]
    return "\n".join([
        "# test_350_tls: an SSL vhost with the policy of conf/bulkfhir-ssl.conf",
        "<IfModule !ssl_module>",
        "LoadModule ssl_module %s/mod_ssl.so" % MODDIR,
        "</IfModule>",
        "<IfModule !socache_shmcb_module>",
        "LoadModule socache_shmcb_module %s/mod_socache_shmcb.so" % MODDIR,
        "</IfModule>",
        "<IfModule !headers_module>",
        "LoadModule headers_module %s/mod_headers.so" % MODDIR,
        "</IfModule>",
        *policy,
        'SSLSessionCache "shmcb:%s/ssl_scache(512000)"' % d,
        "Listen 127.0.0.1:%d" % port,
        "<VirtualHost 127.0.0.1:%d>" % port,
        "    ServerName 127.0.0.1",
        "    SSLEngine on",
        '    SSLCertificateFile "%s"' % cert,
        '    SSLCertificateKeyFile "%s"' % key,
        *["    " + h for h in hsts],
        "</VirtualHost>",
        ""])


@pytest.fixture(scope="module")
def tls(new_stack):
    d = Path(tempfile.mkdtemp(prefix="bf-tls-", dir="/tmp"))
    d.chmod(0o755)
    ca, cert, key = make_pki(d)
    port = free_port()
    st = new_stack(workers=1, extra_conf=tls_conf(d, port, ca, cert, key))
    # Debian's mod_ssl may be built against a newer OpenSSL 3.0.x patch
    # release than the one installed: a harmless start-up warning
    st.base_allowed.append(re.compile(r"^AH01882: "))
    resources, links, _ = generate_and_load(st, patients=5, seed=35)

    class T:
        pass
    t = T()
    t.stack, t.dir, t.ca, t.port = st, d, str(ca), port
    t.base = "https://127.0.0.1:%d/fhir" % port
    t.resources, t.links = resources, links
    yield t
    shutil.rmtree(d, ignore_errors=True)


def tls_client(t):
    c = bfclient.Client(t.base)
    c.http.verify = t.ca          # VERIFY_PEER against the throwaway CA only
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify
    # unless the environment is ignored
    c.http.trust_env = False
    return c


def client_context(t, version=None, legacy=False):
    """A verifying client context (CERT_REQUIRED, hostname checked) pinned to
    one protocol version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(t.ca)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    if legacy:
        # OpenSSL 3 refuses TLS < 1.2 at its default security level: lower it
        # so that the client really offers the old protocol.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
    return ctx


def handshake(t, ctx):
    """Connect, handshake, GET /fhir/metadata; (version, cipher, status line)."""
    with socket.create_connection(("127.0.0.1", t.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      b"Accept: application/fhir+json\r\nConnection: close\r\n\r\n" % t.port)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return s.version(), s.cipher(), data.split(b"\r\n", 1)[0].decode()


# ---- tests ------------------------------------------------------------------------------
def test_350_001_metadata_over_https(tls):
    """R1, §5.9: the CapabilityStatement over TLS with the certificate
    verified against the CA; HSTS is sent."""
    r = tls_client(tls).get("metadata", headers={"Accept": "application/fhir+json"})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["resourceType"] == "CapabilityStatement"
    hsts = r.headers.get("Strict-Transport-Security", "")
    assert re.match(r"max-age=\d{7,}", hsts), r.headers


def test_350_002_export_end_to_end_over_https(tls):
    """R1, R36, 1.9: kick-off, status and every file over https; the
    Content-Location and every manifest URL are https on the TLS port; the
    files hold exactly the loaded data."""
    c = tls_client(tls)
    exp = run_export(c)
    assert exp.status_url.startswith("https://127.0.0.1:%d/fhir/" % tls.port), exp.status_url
    check_manifest_shape(exp, tls.base)
    urls = [i["url"] for k in ("output", "error", "deleted") for i in exp.manifest.get(k, [])]
    assert urls, exp.manifest
    for u in urls:
        assert urlsplit(u).scheme == "https" and urlsplit(u).port == tls.port, u
    check_files(exp)
    check_exact(exp, tls.resources, tls.links)
    rows = tls.stack.psql("SELECT count(*) FROM fhir.resource_version "
                          "WHERE superseded_at IS NULL AND NOT deleted")
    assert sum(i.get("count", 0) for i in exp.manifest["output"]) == int(rows[0][0])


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_350_003_tls12_and_tls13_handshakes(tls, version):
    """R1: TLS 1.2 and TLS 1.3 handshakes succeed with a verified certificate
    and serve the FHIR base; TLS 1.2 negotiates a forward-secret AEAD suite
    from the example's list."""
    v = getattr(ssl.TLSVersion, version)
    got, cipher, status = handshake(tls, client_context(tls, v))
    assert got == version.replace("_", "."), got
    assert status.startswith("HTTP/1.1 200"), status
    if v == ssl.TLSVersion.TLSv1_2:
        assert cipher[0].startswith(("ECDHE-", "DHE-")) and ("GCM" in cipher[0]
                                                             or "CHACHA20" in cipher[0]), cipher


def _openssl_refuses(tls, flag):
    """openssl s_client with a legacy protocol flag: True when the handshake
    fails (no cipher / protocol version alert)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls.port, flag,
                        "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", tls.ca,
                        "-servername", "localhost"],
                       input="", capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    return p.returncode != 0 or "Cipher is (NONE)" in out, out


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_350_004_tls10_and_tls11_refused(tls, version):
    """R1, §5.9: a client offering only TLS 1.0 or 1.1 is refused during the
    handshake.  First a control: the same client context completes a
    handshake with a local Python server that allows that version, so the
    refusal comes from httpd and not from the client being unable to offer
    the protocol (OpenSSL 3 at SECLEVEL=0 still can)."""
    v = getattr(ssl.TLSVersion, version)
    cctx = client_context(tls, v, legacy=True)
    offered = _client_can_offer(tls, cctx, v)
    if offered:
        with pytest.raises(ssl.SSLError) as ei:
            handshake(tls, cctx)
        msg = str(ei.value)
        # the server's protocol_version alert (RFC 8446 6.2 / RFC 5246 7.2.2)
        assert re.search(r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL", msg, re.I), msg
    else:
        # the client library cannot offer it at all: ask the openssl CLI
        flag = {"TLSv1": "-tls1", "TLSv1_1": "-tls1_1"}[version]
        refused, out = _openssl_refuses(tls, flag)
        assert refused, out[-2000:]


def _client_can_offer(tls, cctx, version):
    """Handshake cctx against an in-process server pinned to `version`."""
    import threading
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(tls.dir / "server.pem"), str(tls.dir / "server.key"))
    sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sctx.minimum_version = version
            sctx.maximum_version = version
        except ValueError:
            return False
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    result = {}

    def serve():
        try:
            conn, _ = srv.accept()
            with sctx.wrap_socket(conn, server_side=True) as s:
                result["server"] = s.version()
        except (OSError, ssl.SSLError) as e:
            result["server_error"] = str(e)

    th = threading.Thread(target=serve)
    th.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                result["client"] = s.version()
    except (OSError, ssl.SSLError) as e:
        result["client_error"] = str(e)
    th.join(15)
    srv.close()
    return result.get("client") == version.name.replace("_", ".")


def test_350_005_plain_http_on_tls_port_fails(tls):
    """R1: plain HTTP to the TLS port gets no FHIR content (mod_ssl answers
    400 "speaking plain HTTP to an SSL-enabled server port" or drops the
    connection)."""
    try:
        r = requests.get("http://127.0.0.1:%d/fhir/metadata" % tls.port, timeout=10)
    except requests.exceptions.ConnectionError:
        return
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert "CapabilityStatement" not in r.text


def test_350_006_unverifiable_certificate_is_rejected(tls):
    """§5.9 VERIFY_PEER is on in the client: without the test CA (system trust
    store only) the handshake fails, and a certificate for another name
    fails hostname verification."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls.base + "/metadata", timeout=10)      # system CA bundle only
    ctx = client_context(tls)
    with socket.create_connection(("127.0.0.1", tls.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="fhir.example.org")


def test_350_007_example_conf_passes_configtest(tls):
    """conf/bulkfhir-ssl.conf, with its <placeholders> filled in, is accepted
    by `apache2 -t` next to the module from this build."""
    httpd_conf = (tls.stack.dir / "httpd" / "httpd.conf").read_text()
    mod = re.search(r"^LoadModule bulkfhir_module (\S+)", httpd_conf, re.M).group(1)
    d = tls.dir / "configtest"
    (d / "run").mkdir(parents=True, exist_ok=True)
    (d / "log").mkdir(exist_ok=True)
    site = EXAMPLE.read_text()
    for old, new in (("</etc/ssl/certs/fhir.example.org.fullchain.pem>", str(tls.dir / "server.pem")),
                     ("</etc/ssl/private/fhir.example.org.key>", str(tls.dir / "server.key")),
                     ("<fhir.example.org>", "localhost"), ("</var/run/postgresql>", "/tmp"),
                     ("<bulkfhir>", "bulkfhir"), ("</var/lib/bulkfhir/export>", str(d)),
                     ("${APACHE_RUN_DIR}", str(d / "run")), ("${APACHE_LOG_DIR}", str(d / "log"))):
        site = site.replace(old, new)
    assert not re.search(r"<[a-z/][^>]*\.[^>]*>", re.sub(r"(?m)^\s*#.*$", "", site)), \
        "a placeholder is left: %s" % site
    (d / "site.conf").write_text(site)
    (d / "httpd.conf").write_text("\n".join([
        "ServerRoot %s" % d, "ServerName localhost", "PidFile %s/run/pid" % d,
        "DefaultRuntimeDir %s/run" % d, "ErrorLog %s/log/error.log" % d,
        "LoadModule mpm_event_module %s/mod_mpm_event.so" % MODDIR,
        "LoadModule authz_core_module %s/mod_authz_core.so" % MODDIR,
        "LoadModule ssl_module %s/mod_ssl.so" % MODDIR,
        "LoadModule headers_module %s/mod_headers.so" % MODDIR,
        "LoadModule socache_shmcb_module %s/mod_socache_shmcb.so" % MODDIR,
        "LoadModule bulkfhir_module %s" % mod,
        "Listen 127.0.0.1:%d" % free_port(),
        "Include %s/site.conf" % d, ""]))
    p = subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(d / "httpd.conf")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Syntax OK" in p.stderr + p.stdout, p.stderr + p.stdout
