# -*- coding: utf-8 -*-
"""Issue 8: the transport repeats what the service turned away (429, 503) but never a create a gateway may have
passed on before it timed out (504 on a POST): that could make a second app, secret or CE object."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http as http

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_fakes import FakeResponse, transport  # noqa: E402  pylint: disable=wrong-import-position


def answered(status, method):
    response = FakeResponse(status)
    response.request = type("R", (), {"method": method})()
    return response


@pytest.mark.parametrize("status", [429, 503])
def test_a_post_turned_away_is_sent_again(status):
    t, sleeps = transport([answered(status, "POST"), answered(201, "POST")])
    assert t.request("POST", "things", json={}).status_code == 201
    assert len(t.session.calls) == 2 and len(sleeps) == 1


def test_a_post_that_timed_out_at_the_gateway_is_not_sent_again_and_the_error_says_why():
    t, sleeps = transport([answered(504, "POST"), answered(201, "POST")])
    with pytest.raises(http.ServiceError) as info:
        t.request("POST", "things", json={})
    assert len(t.session.calls) == 1 and sleeps == []
    assert info.value.status == 504 and "may have done" in info.value.describe() and "throttling" not in info.value.describe()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_idempotent_request_that_timed_out_at_the_gateway_is_sent_again(method):
    t, sleeps = transport([answered(504, method), answered(200, method)])
    assert t.request(method, "thing").status_code == 200
    assert len(t.session.calls) == 2
