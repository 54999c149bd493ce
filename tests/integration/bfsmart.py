"""SMART Backend Services from the client side, for the security tests:
keys (python3-cryptography), JWKS documents, signed client assertions
(python3-jwt, or hand-made for the forged ones), a JWKS server on 127.0.0.1
(http.server in a thread), client registration through bulkfhirctl, and
the token request itself.
"""
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return n.to_bytes(length, "big")


class Key:
    """A private key with its public JWK.  kind: "RSA" (RS384/RS256) or
    "EC" (P-384, ES384)."""

    def __init__(self, kind="RSA", kid=None):
        self.kind = kind
        self.kid = kid or "k-" + uuid.uuid4().hex[:12]
        if kind == "RSA":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = self.private.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "kid": self.kid, "alg": "RS384", "use": "sig",
                        "n": b64url(_int_bytes(pub.n)), "e": b64url(_int_bytes(pub.e))}
            self.alg = "RS384"
        else:
            self.private = ec.generate_private_key(ec.SECP384R1())
            pub = self.private.public_key().public_numbers()
            self.jwk = {"kty": "EC", "kid": self.kid, "alg": "ES384", "use": "sig",
                        "crv": "P-384", "x": b64url(_int_bytes(pub.x, 48)),
                        "y": b64url(_int_bytes(pub.y, 48))}
            self.alg = "ES384"

    def public_pem(self):
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwks(*keys, extra=None):
    return {"keys": [k.jwk for k in keys] + list(extra or [])}


def claims(client_id, aud, exp_in=240, **over):
    c = {"iss": client_id, "sub": client_id, "aud": aud,
         "exp": int(time.time()) + exp_in, "jti": uuid.uuid4().hex}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign(key, payload, alg=None, kid=None, jku=None, typ="JWT", headers=None):
    """A compact JWS signed by key (PyJWT)."""
    h = {"kid": kid or key.kid, "typ": typ}
    if jku:
        h["jku"] = jku
    h.update(headers or {})
    return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=h)


def forge(header, payload, signature=b""):
    """A compact JWS with any header and signature bytes (for alg none etc.)."""
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     b64url(signature)])


def forge_hs384(key, payload):
    """HS384 'signed' with the client's public key as the HMAC secret (the
    classic algorithm-confusion attack)."""
    header = {"alg": "HS384", "typ": "JWT", "kid": key.kid}
    si = (b64url(json.dumps(header).encode()) + "." +
          b64url(json.dumps(payload).encode())).encode()
    mac = hmac.new(key.public_pem(), si, hashlib.sha384).digest()
    return si.decode() + "." + b64url(mac)


def token_request(token_url, assertion, scope="system/*.read",
                  grant_type="client_credentials", assertion_type=ASSERTION_TYPE,
                  timeout=30):
    form = {"grant_type": grant_type, "scope": scope,
            "client_assertion_type": assertion_type, "client_assertion": assertion}
    return requests.post(token_url, data={k: v for k, v in form.items() if v is not None},
                         headers={"Accept": "application/json"}, timeout=timeout)


# ---- JWKS server -----------------------------------------------------------------
class JwksServer:
    """127.0.0.1 HTTP server: /jwks/NAME serves self.docs[NAME] (no-store, so
    the module never caches it), /hang never answers in time, /garbage is
    not JSON, /huge is larger than the module's 256 KiB limit."""

    def __init__(self):
        self.docs = {}
        self.hits = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def do_GET(self):
                path = self.path
                server.hits[path] = server.hits.get(path, 0) + 1
                if path.startswith("/jwks/") and path[6:] in server.docs:
                    self._send(200, json.dumps(server.docs[path[6:]]).encode())
                elif path == "/hang":
                    time.sleep(8)
                    self._send(200, b'{"keys":[]}')
                elif path == "/garbage":
                    self._send(200, b"<html>this is not a JWKS</html>", "text/html")
                elif path == "/huge":
                    pad = "x" * (400 * 1024)
                    self._send(200, json.dumps({"keys": [], "pad": pad}).encode())
                else:
                    self._send(404, b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def publish(self, name, doc):
        self.docs[name] = doc
        return self.url("/jwks/" + name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- registration ---------------------------------------------------------------
def register(st, client_id, scope, jwks_doc=None, jwks_uri=None, max_jobs=None):
    args = ["client", "add", "--id", client_id, "--scope", scope]
    if jwks_doc is not None:
        path = st.dir / ("jwks-%s.json" % client_id)
        path.write_text(json.dumps(jwks_doc))
        args += ["--jwks", str(path)]
    if jwks_uri is not None:
        args += ["--jwks-uri", jwks_uri]
    if max_jobs is not None:
        args += ["--max-jobs", str(max_jobs)]
    st.ctl(*args)


class SmartClient:
    """A registered client: its key, id and a way to get tokens."""

    def __init__(self, st, client_id, key, token_url):
        self.st = st
        self.id = client_id
        self.key = key
        self.token_url = token_url

    def assertion(self, **over):
        return sign(self.key, claims(self.id, self.token_url, **over))

    def token(self, scope="system/*.read"):
        r = token_request(self.token_url, self.assertion(), scope=scope)
        assert r.status_code == 200, "token for %s: %d %s" % (self.id, r.status_code, r.text)
        return r.json()["access_token"]


# ---- a stack with BulkFhirAuth smart ------------------------------------------------
SMART_EXTRA_CONF = """
# tests: the JWKS server is http://127.0.0.1:PORT
BulkFhirJwksAllowHttpLoopback On
BulkFhirJwksTimeout 2
# a second FHIR base with a small kick-off rate (R9)
<Location /ratefhir>
    SetHandler bulkfhir
    BulkFhirBaseURL http://127.0.0.1:${BF_PORT}/ratefhir
    Require all granted
    BulkFhirKickoffRate 2/min
</Location>
"""


def oauth_error(r, status, error):
    """An RFC 6749 §5.2 error answer (A13)."""
    assert r.status_code == status, "want %d %s, got %d %s" % (status, error, r.status_code,
                                                                  r.text[:300])
    assert r.headers.get("Content-Type", "").split(";")[0] == "application/json", r.headers
    assert r.headers.get("Cache-Control") == "no-store", r.headers
    body = r.json()
    assert body.get("error") == error, body
    assert isinstance(body.get("error_description"), str) and body["error_description"], body
    assert "access_token" not in body
    return body


def assert_no_secrets_in(path, secrets):
    """No token or assertion (nor a long slice of one) appears in the file."""
    text = path.read_text(errors="replace")
    for s in secrets:
        assert s not in text, "a secret appears in %s" % path
        for part in s.split("."):
            if len(part) >= 20:
                assert part not in text, "part of a secret appears in %s" % path
