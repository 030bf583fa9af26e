# -*- coding: utf-8 -*-
"""A requests session and response for the transport's tests (test_http.py, test_http_retry_safety.py)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http as http


class FakeResponse:
    def __init__(self, status, headers=None, body=None):
        self.status_code = status
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})
        self._body = body
        self.text = "" if body is None else str(body)
        self.reason = "reason"
        self.url = "https://svc.example/v1/thing?secret=1"
        self.content = b"x" if body is not None else b""
        self.request = type("R", (), {"method": "GET"})()

    def json(self):
        if self._body is None:
            raise ValueError("no json")
        return self._body


class FakeSession:
    def __init__(self, answers):
        self.answers = list(answers)
        self.headers = {}
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def transport(answers, **kwargs):
    sleeps = []
    t = http.Transport("svc", base_url="https://svc.example/v1", sleep=sleeps.append, **kwargs)
    t.session = FakeSession(answers)
    return t, sleeps
