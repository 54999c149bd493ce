"""SMART Backend Services token endpoint and discovery (SPEC §3, A1-A13):
the attack table.  Every forged, replayed or misdirected assertion is
refused with an RFC 6749 error (400/401), never a 5xx and never a token;
the good ones get a short-lived bearer token stored only as its hash."""
import time
import types

import pytest
import requests

import bfsmart
from bfsmart import Key, claims, forge, forge_hs384, oauth_error, sign, token_request

SECRETS = []     # every assertion and token of this module: never in the logs


@pytest.fixture(scope="module")
def smart(new_stack):
    st = new_stack(workers=0, auth="smart", extra_conf=bfsmart.SMART_EXTRA_CONF)
    srv = bfsmart.JwksServer()
    ns = types.SimpleNamespace(st=st, srv=srv, token_url=st.base_url + "/token")
    # clients: inline JWKS (RSA), JWKS URL (RSA + EC), ...
    ns.rsa = Key("RSA")
    ns.ec = Key("EC")
    bfsmart.register(st, "inline-rsa", "system/*.read system/*.rs", jwks_doc=bfsmart.jwks(ns.rsa))
    ns.url_keys_uri = srv.publish("url", bfsmart.jwks(ns.rsa, ns.ec))
    bfsmart.register(st, "url-client", "system/*.read", jwks_uri=ns.url_keys_uri)
    bfsmart.register(st, "narrow", "system/Patient.rs", jwks_doc=bfsmart.jwks(ns.rsa))
    bfsmart.register(st, "disabled", "system/*.read", jwks_doc=bfsmart.jwks(ns.rsa))
    st.ctl("client", "disable", "disabled")
    ns.dup_a, ns.dup_b = Key("RSA", kid="same"), Key("RSA", kid="same")
    bfsmart.register(st, "dup-kid", "system/*.read",
                     jwks_uri=srv.publish("dup", bfsmart.jwks(ns.dup_a, ns.dup_b)))
    # kid "mix" names an EC key; the client signs RS384 with an RSA key
    ns.mix_ec, ns.mix_rsa = Key("EC", kid="mix"), Key("RSA", kid="mix")
    bfsmart.register(st, "kty-mismatch", "system/*.read", jwks_doc=bfsmart.jwks(ns.mix_ec))
    bfsmart.register(st, "hang", "system/*.read", jwks_uri=srv.url("/hang"))
    bfsmart.register(st, "garbage", "system/*.read", jwks_uri=srv.url("/garbage"))
    bfsmart.register(st, "huge", "system/*.read", jwks_uri=srv.url("/huge"))
    yield ns
    srv.close()
    bfsmart.assert_no_secrets_in(st.error_log, SECRETS)


def post(smart, assertion, **kw):
    SECRETS.append(assertion)
    r = token_request(smart.token_url, assertion, **kw)
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        SECRETS.append(r.json()["access_token"])
    return r


def good_token(r, scope):
    """A11, A12: 200, bearer, expires_in <= 300, granted scope; stored as
    sha256 only."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.headers.get("Pragma") == "no-cache"
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 300
    assert body["scope"] == scope
    assert "refresh_token" not in body
    return body


# ---- success (A2, A3, A11) -----------------------------------------------------------
def test_300_001_inline_jwks_rs384(smart):
    """A2 (inline JWKS), A3 RS384, A11: a token, stored only as its hash."""
    a = sign(smart.rsa, claims("inline-rsa", smart.token_url))
    body = good_token(post(smart, a, scope="system/*.rs"), "system/*.rs")
    rows = smart.st.psql(
        "SELECT client_id, scope, encode(hash, 'hex'), expires_at > now(),"
        " expires_at <= now() + interval '301 seconds' FROM bulkfhir.token")
    import hashlib
    want = hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert ["inline-rsa", "system/*.rs", want, "t", "t"] in rows
    assert all(body["access_token"] not in "".join(r) for r in rows)


def test_300_002_jwks_url_rs384_and_es384(smart):
    """A2 (JWKS URL), A3: both RS384 and ES384 verify against the registered
    URL, with and without jku; v1 system/*.read is accepted (Inferno)."""
    for key in (smart.rsa, smart.ec):
        for jku in (None, smart.url_keys_uri):
            a = sign(key, claims("url-client", smart.token_url), jku=jku)
            good_token(post(smart, a), "system/*.read")


def test_300_003_scope_subset_granted(smart):
    """A10: only registered scopes are granted; asking for more gives the
    registered subset, asking for nothing registered is invalid_scope."""
    a = sign(smart.rsa, claims("narrow", smart.token_url))
    good_token(post(smart, a, scope="system/Patient.rs system/Observation.rs"),
               "system/Patient.rs")
    a = sign(smart.rsa, claims("narrow", smart.token_url))
    oauth_error(post(smart, a, scope="system/Observation.rs"), 400, "invalid_scope")


# ---- the attack table (A4-A9, A13) --------------------------------------------------------
def _claims(smart, client="inline-rsa", aud=None, **over):
    return claims(client, aud or smart.token_url, **over)


ATTACKS = {
    # name: (assertion builder, status, error)
    "replayed_jti": None,     # below
    "expired_exp": (lambda s: sign(s.rsa, _claims(s, exp_in=-600)), 401, "invalid_client"),
    "exp_too_far_ahead": (lambda s: sign(s.rsa, _claims(s, exp_in=3600)), 401, "invalid_client"),
    "missing_exp": (lambda s: sign(s.rsa, _claims(s, exp=None)), 401, "invalid_client"),
    "missing_jti": (lambda s: sign(s.rsa, _claims(s, jti=None)), 401, "invalid_client"),
    "wrong_aud": (lambda s: sign(s.rsa, _claims(s, aud="https://evil.example/token")),
                  401, "invalid_client"),
    "iss_not_sub": (lambda s: sign(s.rsa, _claims(s, sub="url-client")), 401, "invalid_client"),
    "unknown_client": (lambda s: sign(s.rsa, _claims(s, client="nobody")), 401, "invalid_client"),
    "disabled_client": (lambda s: sign(s.rsa, _claims(s, client="disabled")),
                        401, "invalid_client"),
    "unknown_kid": (lambda s: sign(s.rsa, _claims(s), kid="no-such-kid"), 401, "invalid_client"),
    "two_keys_same_kid": (lambda s: sign(s.dup_a, _claims(s, client="dup-kid")),
                          401, "invalid_client"),
    "kty_alg_mismatch": (lambda s: sign(s.mix_rsa, _claims(s, client="kty-mismatch")),
                         401, "invalid_client"),
    "tampered_signature": (lambda s: _tamper(sign(s.rsa, _claims(s))), 401, "invalid_client"),
    "tampered_payload": (lambda s: _swap_payload(s), 401, "invalid_client"),
    "alg_none": (lambda s: forge({"alg": "none", "typ": "JWT", "kid": s.rsa.kid}, _claims(s)),
                 401, "invalid_client"),
    "hs384_public_key_secret": (lambda s: forge_hs384(s.rsa, _claims(s)), 401, "invalid_client"),
    "rs256": (lambda s: sign(s.rsa, _claims(s), alg="RS256"), 401, "invalid_client"),
    "wrong_typ": (lambda s: sign(s.rsa, _claims(s), typ="at+jwt"), 401, "invalid_client"),
    # SMART: typ is required (fixed value JWT); accepted before issue #11
    "missing_typ": (lambda s: sign(s.rsa, _claims(s), typ=None), 401, "invalid_client"),
    "jku_not_registered": (lambda s: sign(s.rsa, _claims(s, client="url-client"),
                                          jku=s.srv.publish("evil", bfsmart.jwks(s.rsa))),
                           401, "invalid_client"),
    "jku_on_inline_client": (lambda s: sign(s.rsa, _claims(s),
                                            jku=s.srv.publish("evil2", bfsmart.jwks(s.rsa))),
                             401, "invalid_client"),
    "jwks_url_hangs": (lambda s: sign(s.rsa, _claims(s, client="hang")), 401, "invalid_client"),
    "jwks_url_garbage": (lambda s: sign(s.rsa, _claims(s, client="garbage")),
                         401, "invalid_client"),
    "jwks_url_too_large": (lambda s: sign(s.rsa, _claims(s, client="huge")),
                           401, "invalid_client"),
    "not_a_jwt": (lambda s: "not.a.jwt", 401, "invalid_client"),
}


def _tamper(tok):
    h, p, sig = tok.split(".")
    flipped = ("A" if sig[5] != "A" else "B")
    return ".".join([h, p, sig[:5] + flipped + sig[6:]])


def _swap_payload(s):
    """A valid signature over other claims: the payload of one assertion
    with the signature of another."""
    a = sign(s.rsa, _claims(s)).split(".")
    b = sign(s.rsa, _claims(s, client="url-client")).split(".")
    return ".".join([a[0], b[1], a[2]])


@pytest.mark.parametrize("name", sorted(k for k in ATTACKS if ATTACKS[k]))
def test_300_010_attack(smart, name):
    """A4-A9, A13: each forged assertion -> 401 invalid_client, no token."""
    build, status, error = ATTACKS[name]
    a = build(smart)
    t0 = time.monotonic()
    r = post(smart, a)
    oauth_error(r, status, error)
    if name == "jwks_url_hangs":
        # BulkFhirJwksTimeout 2: the endpoint does not hang with the URL
        assert time.monotonic() - t0 < 6
    # no token was stored for a refused assertion
    rows = smart.st.psql("SELECT count(*) FROM bulkfhir.token WHERE client_id NOT IN"
                         " ('inline-rsa', 'url-client', 'narrow')")
    assert rows == [["0"]]


def test_300_011_replayed_jti(smart):
    """A5: the same assertion twice -> first 200, then 401 invalid_client;
    the jti is remembered in bulkfhir.jti until after the assertion expires."""
    c = _claims(smart)
    a = sign(smart.rsa, c)
    good_token(post(smart, a), "system/*.read")
    oauth_error(post(smart, a), 401, "invalid_client")
    # a new assertion with the same jti is a replay too
    a2 = sign(smart.rsa, dict(c, exp=c["exp"] + 5))
    oauth_error(post(smart, a2), 401, "invalid_client")
    rows = smart.st.psql("SELECT count(*), bool_and(expires_at >= to_timestamp(:'p2'))"
                         " FROM bulkfhir.jti WHERE client_id = 'inline-rsa' AND jti = :'p1'",
                         c["jti"], str(c["exp"]))
    assert rows == [["1", "t"]]


def test_300_012_bad_grant_type(smart):
    """A13, §5 item 10: a bad grant_type -> 400 unsupported_grant_type."""
    a = sign(smart.rsa, _claims(smart))
    oauth_error(post(smart, a, grant_type="authorization_code"), 400, "unsupported_grant_type")
    oauth_error(post(smart, a, grant_type=None), 400, "invalid_request")


def test_300_013_bad_assertion_type(smart):
    """A13, §5 item 10: a bad client_assertion_type -> 400 (Inferno: 400/401)."""
    a = sign(smart.rsa, _claims(smart))
    oauth_error(post(smart, a, assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
                400, "invalid_request")


def test_300_014_scope_not_registered(smart):
    """A10: a scope outside the registration -> 400 invalid_scope;
    malformed scopes (patient/, ?query) grant nothing."""
    for scope in ("system/Patient.cud", "patient/*.read", "system/Observation.rs?category=x",
                  "openid"):
        a = sign(smart.rsa, _claims(smart, client="narrow"))
        oauth_error(post(smart, a, scope=scope), 400, "invalid_scope")


def test_300_015_form_errors(smart):
    """RFC 6749 §3.2: POST only, form encoded, no repeated parameters."""
    r = requests.get(smart.token_url, timeout=10)
    oauth_error(r, 405, "invalid_request")
    a = sign(smart.rsa, _claims(smart))
    SECRETS.append(a)
    r = requests.post(smart.token_url, json={"grant_type": "client_credentials"}, timeout=10)
    oauth_error(r, 400, "invalid_request")
    r = requests.post(smart.token_url, timeout=10,
                      data=[("grant_type", "client_credentials"),
                            ("grant_type", "client_credentials"), ("scope", "system/*.read"),
                            ("client_assertion_type", bfsmart.ASSERTION_TYPE),
                            ("client_assertion", a)])
    oauth_error(r, 400, "invalid_request")
    r = requests.post(smart.token_url, data="grant_type=%zz", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(r, 400, "invalid_request")
    r = requests.post(smart.token_url, data="client_assertion=" + "a" * 70000, timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    oauth_error(r, 413, "invalid_request")


# ---- discovery (A1) ------------------------------------------------------------------
def test_300_020_smart_configuration(smart):
    """A1: .well-known/smart-configuration is JSON whatever Accept says, with
    an absolute token endpoint and the backend-services fields."""
    for accept in ("application/json", "text/html", None):
        r = requests.get(smart.st.base_url + "/.well-known/smart-configuration",
                         headers={"Accept": accept} if accept else {}, timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"].split(";")[0] == "application/json"
        doc = r.json()
        assert doc["token_endpoint"] == smart.token_url
        assert doc["grant_types_supported"] == ["client_credentials"]
        assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(doc["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
        assert set(doc["scopes_supported"]) == {"system/*.read", "system/*.rs"}
        assert {"client-confidential-asymmetric", "permission-v1",
                "permission-v2"} <= set(doc["capabilities"])


def test_300_021_capability_statement_security(smart):
    """§4/§3.1: rest.security names SMART-on-FHIR and the token URL in the
    oauth-uris extension."""
    r = requests.get(smart.st.base_url + "/metadata", timeout=10)
    assert r.status_code == 200
    sec = r.json()["rest"][0]["security"]
    codes = [c["code"] for s in sec["service"] for c in s["coding"]]
    assert "SMART-on-FHIR" in codes
    ext = [e for e in sec["extension"] if e["url"] ==
           "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"]
    assert ext and {"url": "token", "valueUri": smart.token_url} in ext[0]["extension"]


def test_300_022_token_endpoint_not_served_without_smart(stack):
    """With BulkFhirAuth none there is no token endpoint nor discovery."""
    for path in ("/token", "/.well-known/smart-configuration"):
        r = requests.post(stack.base_url + path, data={"grant_type": "client_credentials"},
                          timeout=10) if path == "/token" else \
            requests.get(stack.base_url + path, timeout=10)
        assert r.status_code == 404, r.text
