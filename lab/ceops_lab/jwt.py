"""Just enough JWS for the lab: RS256 / PS256 signing and verification (no PyJWT on purpose,
so the lab depends on `cryptography` alone)."""

import base64
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .ca import b64url


class JwtError(ValueError):
    """A token that cannot be parsed or verified; the message says why."""


def b64url_decode(text):
    if isinstance(text, str):
        text = text.encode("ascii")
    # Tolerate both padded and unpadded input (msal pads x5t with '=').
    text = text.rstrip(b"=")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _padding(alg):
    if alg == "RS256":
        return padding.PKCS1v15()
    if alg == "PS256":
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    raise JwtError("unsupported alg %r" % alg)


def _segment(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def encode(claims, key, headers=None, alg="RS256"):
    header = {"typ": "JWT", "alg": alg}
    header.update(headers or {})
    signing_input = ("%s.%s" % (_segment(header), _segment(claims))).encode("ascii")
    signature = key.sign(signing_input, _padding(alg), hashes.SHA256())
    return "%s.%s" % (signing_input.decode("ascii"), b64url(signature))


def decode_unverified(token):
    """(header, claims, signing_input, signature) of a compact JWS, without checking anything."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JwtError("not a compact JWS")
    head, body, sig = token.split(".")
    try:
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
        signature = b64url_decode(sig)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("malformed token: %s" % exc) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed token: header and claims must be JSON objects")
    return header, claims, ("%s.%s" % (head, body)).encode("ascii"), signature


def verify_signature(header, signing_input, signature, public_key):
    alg = header.get("alg")
    try:
        public_key.verify(signature, signing_input, _padding(alg), hashes.SHA256())
    except InvalidSignature as exc:
        raise JwtError("signature verification failed") from exc
