"""Access tokens as Entra issues them for client credentials (v1.0 tokens, as Microsoft's own
resources Graph and Exchange receive), and their validation as a resource server does it.

Exchange, IMAP and SMTP emulators added later validate tokens with validate() too.
"""

import base64
import os
import re
import time

from . import jwt
from .ca import b64url

LIFETIME = 3599  # expires_in of every client-credentials token
CLOCK_SKEW = 300  # resource servers accept tokens up to 5 minutes past exp
GRAPH_AUDIENCES = ("https://graph.microsoft.com", "https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000")
EXCHANGE_AUDIENCES = ("https://outlook.office365.com", "https://outlook.office365.com/", "00000002-0000-0ff1-ce00-000000000000")
_ISSUER = re.compile(r"^https://sts\.windows\.net/([0-9a-fA-F-]{36})/$")


class TokenInvalid(Exception):
    """A bearer token a resource must refuse; str() is the message Graph would give."""


def issuer(tenant_id):
    return "https://sts.windows.net/%s/" % tenant_id


def issue(lab, directory, app, service_principal, audience, appidacr, roles, lifetime=LIFETIME, extra_claims=None):
    """Sign an app-only access token; returns (token, claims)."""
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": issuer(directory.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime),
        "aio": base64.b64encode(os.urandom(42)).decode("ascii"),
        "app_displayname": app.get("displayName"),
        "appid": app["appId"],
        "appidacr": appidacr,
        "idp": issuer(directory.tenant_id),
        "idtyp": "app",
        "oid": service_principal["id"],
        "sub": service_principal["id"],
        "tid": directory.tenant_id,
        "uti": b64url(os.urandom(16)),
        "ver": "1.0",
    }
    if roles:
        claims["roles"] = list(roles)  # Entra omits the claim when nothing is assigned
    claims.update(extra_claims or {})
    kid = lab.signing.thumbprints["x5t"]
    token = jwt.encode(claims, lab.signing.key, headers={"x5t": kid, "kid": kid}, alg="RS256")
    return token, claims


def validate(lab, token, audiences):
    """Claims of a valid token for one of `audiences`; raises TokenInvalid with Graph's wording."""
    if not token:
        raise TokenInvalid("Access token is empty.")
    if "." not in token:
        raise TokenInvalid(
            "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization "
            "Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey."
            "EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.")
    try:
        header, claims, signing_input, signature = jwt.decode_unverified(token)
    except jwt.JwtError as exc:
        raise TokenInvalid("Access token validation failure. Invalid token.") from exc
    if header.get("alg") != "RS256" or header.get("kid") != lab.signing.thumbprints["x5t"]:
        raise TokenInvalid("Access token validation failure. Invalid signing key.")
    try:
        jwt.verify_signature(header, signing_input, signature, lab.signing.key.public_key())
    except jwt.JwtError as exc:
        raise TokenInvalid("Access token validation failure.") from exc
    now = time.time()
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + CLOCK_SKEW < now:
        raise TokenInvalid("Lifetime validation failed, the token is expired.")
    if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] - CLOCK_SKEW > now:
        raise TokenInvalid("Lifetime validation failed, the token is not yet valid.")
    if claims.get("aud") not in audiences:
        raise TokenInvalid("Access token validation failure. Invalid audience.")
    match = _ISSUER.match(str(claims.get("iss", "")))
    if not match or match.group(1).lower() != str(claims.get("tid", "")).lower():
        raise TokenInvalid("Access token validation failure. Invalid issuer.")
    return claims
