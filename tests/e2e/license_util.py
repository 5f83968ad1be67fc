"""Helpers for the license-service tests (test_license.py) and benches/license_load.sh.

Tokens are minted here with PyJWT + cryptography (independent of the server's jsonwebtoken
crate); hostile tokens (`alg: none`, HS256 keyed with an RSA public key PEM, tampered payloads)
are assembled by hand, since PyJWT refuses to make them.
"""
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt  # PyPI PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.example/"
AUDIENCE = "drm-origin"
HMAC_SECRET = bytes(range(32, 80))  # 48 bytes
HMAC_SECRET_B64 = base64.b64encode(HMAC_SECRET).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(**over):
    """Valid claims (issuer, audience, 1 h lifetime, group `entitled`); `None` values drop a claim."""
    now = int(time.time())
    c = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600,
         "groups": ["entitled"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def hs256(c, secret=HMAC_SECRET, headers=None):
    return jwt.encode(c, secret, algorithm="HS256", headers=headers)


def raw_token(header, payload, signing_input_key=None, signature=b""):
    """A compact JWS assembled by hand; with `signing_input_key`, HMAC-SHA256 over it."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    if signing_input_key is not None:
        signature = hmac.new(signing_input_key, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(signature)}"


class KeyPair:
    def __init__(self, private, alg):
        self.private = private
        self.alg = alg
        self.public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, c, alg=None, headers=None):
        return jwt.encode(c, self.private, algorithm=alg or self.alg, headers=headers)

    def write(self, path):
        Path(path).write_bytes(self.public_pem)
        return Path(path)


def rsa_pair():
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


def ec_pair():
    return KeyPair(ec.generate_private_key(ec.SECP256R1()), "ES256")


def license_body(kids, kind="temporary"):
    """ClearKey license request (spec-notes §5): base64url KIDs, no padding."""
    return json.dumps({"kids": [b64url(k) for k in kids], "type": kind}).encode()


def self_signed_cert_pem(pair, cn="idp.example"):
    """A self-signed X.509 certificate (PEM) for `pair`'s key: the form IdPs publish."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(pair.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .sign(pair.private, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)
