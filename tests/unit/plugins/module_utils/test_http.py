# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest
import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http as http

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_fakes import FakeResponse, transport  # noqa: E402  pylint: disable=wrong-import-position


def test_retry_after_seconds_and_dates():
    assert http.retry_after_seconds("7") == 7.0
    assert http.retry_after_seconds(None) is None
    assert http.retry_after_seconds("garbage") is None
    assert http.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10.0


def test_backoff_honours_retry_after_with_a_cap_and_jitters_otherwise():
    assert http.backoff_delay(1, retry_after=3) == 3
    assert http.backoff_delay(1, retry_after=3600, cap=30) == 30
    assert http.backoff_delay(3, rand=lambda: 0.0) == 1.0   # 0.5 * 2**2 * 0.5
    assert http.backoff_delay(3, rand=lambda: 1.0) == 2.0
    assert http.backoff_delay(30, rand=lambda: 1.0, cap=30) == 30


def test_throttling_is_retried_honouring_retry_after():
    t, sleeps = transport([FakeResponse(429, {"Retry-After": "2"}), FakeResponse(503), FakeResponse(200, body={"ok": 1})])
    response = t.request("GET", "thing")
    assert response.status_code == 200
    assert sleeps[0] == 2.0 and len(sleeps) == 2
    assert t.stats == {"requests": 3, "retries": 2}


def test_retries_are_bounded_and_the_error_says_so():
    t, sleeps = transport([FakeResponse(429, {"Retry-After": "1"})] * 4, max_retries=3)
    with pytest.raises(http.ServiceError) as info:
        t.request("GET", "thing")
    assert info.value.status == 429 and len(sleeps) == 3
    assert "throttling" in info.value.describe()


def test_every_request_carries_explicit_verify_and_timeout():
    t, dummy = transport([FakeResponse(200, body={})], ca_path="/tmp/ca.pem", timeout=12)
    t.request("GET", "thing")
    kwargs = t.session.calls[0][2]
    assert kwargs["verify"] == "/tmp/ca.pem"
    assert kwargs["timeout"] == (10.0, 12.0)
    assert kwargs["headers"]["client-request-id"]


def test_post_is_not_repeated_after_a_connection_error():
    t, sleeps = transport([requests.exceptions.ConnectionError("reset"), FakeResponse(201, body={})])
    with pytest.raises(http.ServiceError) as info:
        t.request("POST", "thing", json={})
    assert info.value.status is None and not sleeps
    assert "reachable" in info.value.describe()


def test_get_is_retried_after_a_connection_error():
    t, sleeps = transport([requests.exceptions.ConnectionError("reset"), FakeResponse(200, body={})])
    assert t.request("GET", "thing").status_code == 200
    assert len(sleeps) == 1


def test_error_carries_code_message_request_id_and_hides_the_query():
    body = {"error": {"code": "Request_BadRequest", "message": "bad thing"}}
    t, dummy = transport([FakeResponse(400, {"request-id": "rid-1"}, body)])
    with pytest.raises(http.ServiceError) as info:
        t.request("GET", "thing")
    error = info.value
    assert (error.status, error.code, error.request_id) == (400, "Request_BadRequest", "rid-1")
    assert "secret=1" not in error.describe()
    assert "bad thing" in error.describe() and "rid-1" in error.describe()
