# -*- coding: utf-8 -*-
"""Secrets out of results in every encoding a service may echo them in; control characters out of messages."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import html
import json
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import patch_module_args

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http, _scrub

SECRET = 'Wr0ng~fa/b+r=ik"am\\\u00f6 s\u20accret'
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSJ9.c2lnbmF0dXJlLXBhcnQ"


def lower_hex(text):
    import re
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def echoed_forms(secret):
    """How services echo a secret they were sent: each is what a message would carry."""
    as_json = json.dumps(secret)[1:-1]
    return {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote lower-case hex": lower_hex(quote(secret, safe="")),
        "quote_plus (form)": quote_plus(secret),
        "quote_plus lower-case hex": lower_hex(quote_plus(secret)),
        "form body": urlencode({"client_secret": secret}),
        "json ensure_ascii": as_json,
        "json ensure_ascii upper-case \\u": as_json.replace("\\u00f6", "\\u00F6").replace("\\u20ac", "\\u20AC"),
        "json without ensure_ascii": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json with escaped solidus": as_json.replace("/", "\\/"),
        "json body in a json message": json.dumps(json.dumps({"client_secret": secret}))[1:-1],
        "form body in a json message": json.dumps(urlencode({"client_secret": secret}))[1:-1],
        "html": html.escape(secret),
    }


@pytest.mark.parametrize("form", sorted(echoed_forms(SECRET)))
def test_every_echoed_form_of_a_secret_is_scrubbed_from_every_string_of_a_result(form):
    echoed = echoed_forms(SECRET)[form]
    assert echoed  # the form is what a service would send back
    result = {"msg": "token request refused: echo POST /token body %s; fix the secret" % echoed,
              "warnings": ["Portal said: %s" % echoed], "mailboxes": [{"response": "NO %s" % echoed}], echoed: "as a key"}
    scrubbed = json.dumps(_scrub.scrub(result, {SECRET}))
    for name, text in echoed_forms(SECRET).items():
        if len(text) > 6:
            assert text not in scrubbed and json.dumps(text)[1:-1] not in scrubbed, name
    assert "token request refused: echo POST /token body" in scrubbed and "fix the secret" in scrubbed


def test_echoed_credentials_in_authorization_headers_and_jwts_are_scrubbed_but_prose_is_kept():
    basic = base64.b64encode(b"ce-admin:Lab-p4ss").decode("ascii")
    text = ("headers: Authorization: Bearer %s, authorization: Basic %s, X: Bearer cep_0123456789abcdefghij; "
            "client_assertion=%s; basic authentication is disabled for SMTP; Bearer token refused" % (TOKEN, basic, TOKEN))
    scrubbed = _scrub.scrub(text, set())
    assert TOKEN not in scrubbed and basic not in scrubbed and "cep_0123456789abcdefghij" not in scrubbed
    assert "basic authentication is disabled for SMTP" in scrubbed and "Bearer token refused" in scrubbed


def test_a_token_this_process_fetched_is_scrubbed_like_a_no_log_value():
    token = "opaque-access-token-1234567890"
    _scrub.hold(token)
    assert token not in _scrub.scrub({"msg": "echo: %s" % quote(token)}, set())["msg"]


def test_control_characters_never_reach_a_message():
    scrubbed = _scrub.scrub({"msg": "HTTP 403: \x00\x01\x1b[31mred\x7f\x9b\r end\n\tnext"}, set())
    assert scrubbed["msg"] == "HTTP 403: \\x00\\x01\\x1b[31mred\\x7f\\x9b\\x0d end\n\tnext"


class SecretModule(_scrub.ScrubsSecrets, AnsibleModule):
    pass


def run_failing(args, msg, warning=None):
    with patch_module_args(args):
        module = SecretModule(argument_spec=dict(secret=dict(type="str", no_log=True), url=dict(type="str")))
        if warning:
            module.warn(warning)
        with pytest.raises(SystemExit):
            module.fail_json(msg=msg, detail={"echo": msg})


def test_the_module_hook_scrubs_failures_warnings_and_the_invocation(capsys):
    echoed = quote_plus(SECRET)
    url = "https://ce-admin:%s@ce-portal.example.com" % quote("p@ss/word", safe="")
    run_failing({"secret": SECRET, "url": url}, "the Portal echoed client_secret=%s from %s" % (echoed, url),
                warning="also %s" % json.dumps(SECRET))
    out = capsys.readouterr().out
    result = json.loads(out)
    assert echoed not in out and json.dumps(SECRET)[1:-1] not in out and SECRET not in out
    assert "p%40ss%2Fword" not in out and "p@ss/word" not in out  # not in msg, detail, nor the invocation's module_args
    assert "client_secret=********" in result["msg"] and 'also \\"********\\"' in out  # the warning, as it went out


# -- bodies that are not the JSON expected ----------------------------------------------------------------------------
class Answer:
    def __init__(self, status, content, content_type):
        self.status_code = status
        self.content = content
        self.text = content.decode("utf-8", "replace")
        self.headers = requests.structures.CaseInsensitiveDict({"Content-Type": content_type, "request-id": "rid-7"})
        self.reason = "Internal Server Error"
        self.url = "https://graph.example/v1.0/applications?$filter=x"
        self.request = type("R", (), {"method": "GET"})()

    def json(self):
        return json.loads(self.text)


HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n<body>\n"
             + "<p>stack frame %d</p>\n" * 400 + "</body></html>\n")


@pytest.mark.parametrize("content,content_type,expected", [
    ((HTML_PAGE % tuple(range(400))).encode(), "text/html; charset=utf-8", "text/html body of %d bytes, first line: <!DOCTYPE html>"
     % len((HTML_PAGE % tuple(range(400))).encode())),
    (b"\x00" * 64, "application/json", "binary body of 64 bytes (application/json)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", "binary body of 10 bytes (image/png)"),
    (b"", "text/plain", "empty body"),
    (b"   \n", "text/plain", "empty body"),
    (b"Service Unavailable " + b"x" * 400, "text/plain", "text/plain body of 420 bytes, first line: Service Unavailable [... 401 more characters]"),
])
def test_a_body_that_is_not_json_is_described_never_pasted(content, content_type, expected):
    error = _http.Transport("Microsoft Graph").error_from(Answer(500, content, content_type))
    assert error.message == expected
    text = error.describe()
    assert "HTTP 500" in text and "request id rid-7" in text and "stack frame 1" not in text and "\x00" not in text


def test_a_long_service_message_is_cut_between_words():
    word = "secretpart" * 3
    capped = _http.cap(("word " * 250) + word, 1000)
    assert word not in capped and "secretpart" not in capped and capped.endswith("more characters]") and len(capped) < 1100
