# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Secrets out of everything a module returns, in every form a service may echo them in. Internal to this collection.

Ansible masks the literal no_log values only. A token endpoint, Graph or a CE Portal that quotes the request it refuses
hands a secret back encoded: form-encoded (``+``, ``%2B``), percent-encoded with upper- or lower-case hex, JSON-escaped
(``\\"``, ``\\\\``, ``\\u00f6``, with or without ``ensure_ascii``, ``\\/``), HTML-escaped, or one of those inside another
(a JSON body quoted in a JSON error). ``scrub()`` replaces each of these forms of every secret the module holds (its
no_log values, the access tokens it fetched, a password in a URL it was given) with Ansible's mask in every string
of a result, warning or message; credentials in an echoed ``Authorization`` header and anything shaped like a JWT go
too. Control characters (but line feed and tab) are shown as \\xNN, so a binary answer cannot reach a log or a terminal.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import html
import json
import re
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "********"

# Access tokens this process fetched: as secret as a no_log value, but held by no option (msauth adds them).
_HELD = set()


def hold(value):
    """Scrub ``value`` from every result of this process from now on (an access token, a session credential)."""
    if value and len(value) >= 8:
        _HELD.add(value)


def _json_ascii(value):
    return json.dumps(value)[1:-1]


_ENCODERS = (
    lambda value: quote(value, safe=""),
    lambda value: quote(value, safe="/"),      # a URL path keeps its slashes
    quote_plus,                                 # application/x-www-form-urlencoded, as requests sends data=
    _json_ascii,
    lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    lambda value: _json_ascii(value).replace("/", "\\/"),  # encoders that escape the solidus (PHP, .NET)
    html.escape,
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}")


def _case_variants(form):
    """Percent escapes and \\u escapes are written with either case of hex digits."""
    yield form
    yield _PERCENT.sub(lambda m: m.group(0).lower(), form)
    yield _PERCENT.sub(lambda m: m.group(0).upper(), form)
    yield _UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group(0)[2:].upper(), form)


def secret_forms(secret):
    """Every form of ``secret`` this module scrubs: raw, each encoding above, and each encoding of an encoding."""
    level1 = set(encode(secret) for encode in _ENCODERS)
    level2 = set(encode(form) for form in level1 for encode in _ENCODERS)
    return set(variant for form in {secret} | level1 | level2 for variant in _case_variants(form) if variant)


_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)([A-Za-z0-9._~+/=-]{16,}|[A-Za-z0-9+/=%]{8,})")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# C0 and C1 controls and DEL, but for line feed and tab: a message stays one readable text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _authorization(match):
    scheme, gap, credential = match.groups()
    if scheme.lower() == "basic":
        # "Basic authentication is disabled" is prose; user:password in base64 is a credential.
        try:
            decoded = base64.b64decode(unquote(credential), validate=True)
        except (binascii.Error, ValueError):
            return match.group(0)
        if b":" not in decoded:
            return match.group(0)
    return "%s%s%s" % (scheme, gap, MASK)


def escape_controls(text):
    """Control characters shown as \\xNN: visible, harmless in a log or a terminal."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group(0)), text)


def url_credentials(params):
    """Passwords and user:password pairs written into URL options (https://user:password@host): secrets too."""
    found = set()
    for value in (params or {}).values():
        if isinstance(value, str) and "@" in value and "://" in value:
            try:
                parts = urlsplit(value.strip())
            except ValueError:
                continue
            if parts.password:
                found.update((parts.password, unquote(parts.password), "%s:%s" % (parts.username, parts.password)))
            # The user name with what follows it in the URL too: ansible-core before 2.19 masks the values one by one in no
            # particular order, so the password may go first and leave "user:********" for the pair to miss.
            if parts.username:
                found.add("%s%s" % (parts.username, ":" if parts.password is not None else "@"))
    return found


class Scrubber:
    """One pass per string over every form of every secret, longest first (a form inside a longer one goes with it)."""

    def __init__(self, secrets):
        forms = set()
        for secret in secrets:
            if isinstance(secret, str) and secret:
                forms.update(secret_forms(secret))
        ordered = sorted(forms, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None

    def text(self, value):
        if self.pattern is not None:
            value = self.pattern.sub(MASK, value)
        return _JWT.sub(MASK, _AUTHORIZATION.sub(_authorization, value))

    def __call__(self, value):
        if isinstance(value, str):
            return escape_controls(self.text(value))
        if isinstance(value, dict):
            return dict((self(key), self(item)) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(self(item) for item in value)
        return value


def scrub(value, secrets):
    """``value`` (a string, or a result of dicts and lists) without any form of ``secrets`` or control characters."""
    return Scrubber(set(secrets) | _HELD)(value)


class ScrubsSecrets:
    """For AnsibleModule subclasses: every exit, failure and warning goes out scrubbed (see the module docstring)."""

    def _scrub(self, value):
        no_log_values = getattr(self, "no_log_values", set())
        # Added to no_log_values, Ansible masks them in the invocation it returns too.
        no_log_values.update(url_credentials(getattr(self, "params", None)))
        return scrub(value, no_log_values)

    def warn(self, warning):
        super(ScrubsSecrets, self).warn(self._scrub(warning))

    def exit_json(self, **result):
        super(ScrubsSecrets, self).exit_json(**self._scrub(result))

    def fail_json(self, msg, **result):
        result = self._scrub(dict(result, msg=msg))
        super(ScrubsSecrets, self).fail_json(**result)
