# -*- coding: utf-8 -*-
"""URLs that would leak credentials or reach another object or host are refused before any request."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest
import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http, ce_portal, exo_errors, exo_rest, graph, msauth
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exchange_fakes import FakeAuth, FakeResponse, FakeSession, TENANT  # noqa: E402  pylint: disable=wrong-import-position

PASSWORD = "Hunter2%2Fpass"
GUID = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
CLIENT = "11111111-2222-3333-4444-555555555555"


def ms_problems(**endpoints):
    return msauth.MicrosoftAuth(GUID, client_id=CLIENT, client_secret="s", token_cache_dir=None, **endpoints).validate()


@pytest.mark.parametrize("option", ["authority_host", "graph_endpoint", "exchange_endpoint"])
def test_a_microsoft_endpoint_with_a_user_name_or_password_is_refused_without_showing_it(option):
    problems = ms_problems(**{option: "https://admin:%s@login.example.com" % PASSWORD})
    assert len(problems) == 1 and "user name or password" in problems[0] and "login.example.com" in problems[0]
    assert PASSWORD not in problems[0] and "admin" not in problems[0]


@pytest.mark.parametrize("url", ["https://ce-portal.example.com?tenant=acme", "https://ce-portal.example.com/#x",
                                 "https://ce-portal.example.com/?"])
def test_a_ce_url_with_a_query_or_fragment_is_refused_instead_of_getting_the_api_path_after_it(url):
    problem = ce_portal.ce_url_problem(url)
    assert "query string or fragment" in problem and "base URL only" in problem
    with pytest.raises(ValueError, match="query string or fragment"):
        ce_portal.api_base_url(url)


def test_a_ce_url_with_credentials_is_refused_and_never_shown():
    problem = ce_portal.ce_url_problem("https://ce-admin:%s@ce-portal.example.com" % PASSWORD)
    assert "user name or password" in problem and PASSWORD not in problem and "ce-admin" not in problem
    assert "https://<credentials>@ce-portal.example.com" in problem


def test_a_plain_http_ce_url_is_refused_unless_opted_in():
    problem = ce_portal.ce_url_problem("http://ce-portal.example.com")
    assert "is not https" in problem and "ce_allow_plain_http" in problem
    assert ce_portal.ce_url_problem("http://ce-portal.example.com", allow_plain_http=True) is None


@pytest.mark.parametrize("url,says", [("https://login.example.com/x/oauth2/v2.0/token?p=1", "query string"),
                                      ("https://u:%s@login.example.com/x/oauth2/v2.0/token" % PASSWORD, "user name or password"),
                                      ("http://login.example.com/x/oauth2/v2.0/token", "must be an https URL")])
def test_a_token_endpoint_url_for_ce_is_checked_like_every_url_option(url, says):
    problems = ce_portal.oauth_settings_problems({"name": "n", "client_id": GUID, "scopes": ["s"], "token_endpoint_url": url})
    assert len(problems) == 1 and says in problems[0] and PASSWORD not in problems[0]


# -- paging links ------------------------------------------------------------------------------------------------------
class Auth:
    endpoints = {"graph_endpoint": "https://graph.example.com", "graph_resource": "https://graph.microsoft.com"}
    ca_path, validate_certs, timeout = None, True, 30

    def graph_token(self):
        return "graph-token"


def graph_client(answers):
    client = graph.GraphClient(Auth())
    client.transport.session = FakeSession(answers)
    return client


def sent_urls(client):
    return [call["url"] for call in client.transport.session.calls]


def page(items, next_link=None):
    body = {"value": items}
    if next_link:
        body["@odata.nextLink"] = next_link
    return FakeResponse(200, body, url="https://graph.example.com/v1.0/applications")


@pytest.mark.parametrize("link", ["https://evil.example.com/v1.0/applications?$skiptoken=2",
                                  "http://graph.example.com/v1.0/applications?$skiptoken=2",
                                  "https://graph.example.com:8443/v1.0/applications?$skiptoken=2"])
def test_graph_follows_a_next_link_only_to_the_configured_endpoint(link):
    client = graph_client([page([{"id": 1}], link), page([{"id": 2}])])
    with pytest.raises(_http.ServiceError) as caught:
        client.list("applications")
    assert "is not followed" in caught.value.message and link.split("/v1.0")[0].split("://")[1].split(":")[0] in caught.value.message
    assert sent_urls(client) == ["https://graph.example.com/v1.0/applications"]  # the token went nowhere else


def test_graph_follows_its_own_next_links():
    client = graph_client([page([{"id": 1}], "https://GRAPH.example.com:443/v1.0/applications?$skiptoken=2"), page([{"id": 2}])])
    assert client.list("applications") == [{"id": 1}, {"id": 2}]


def test_exchange_rest_follows_a_next_link_only_to_the_configured_endpoint():
    transport = _http.Transport("Exchange Online", base_url="https://exo.example", error_parser=exo_errors.exchange_error_parser,
                                sleep=lambda s: None)
    transport.session = FakeSession([FakeResponse(200, {"value": [{"n": 1}], "@odata.nextLink": "https://exo.evil.example/next"}),
                                     FakeResponse(200, {"value": [{"n": 2}]})])
    runner = exo_rest.RestRunner(FakeAuth(), TENANT, transport=transport)
    with pytest.raises(ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert "exo.evil.example" in caught.value.describe() and caught.value.fatal
    assert [call["url"] for call in transport.session.calls] == ["https://exo.example/adminapi/beta/%s/InvokeCommand" % TENANT]


# -- values in URL paths -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unique_name", ["../servicePrincipals/x", "ce-email#frag", "ce-email?$select=id", "ce email/..%2F"])
def test_a_unique_name_addresses_only_the_app_of_that_name(unique_name):
    client = graph_client([FakeResponse(404, {"error": {"code": "Request_ResourceNotFound", "message": "nope"}})])
    assert client.find_applications(unique_name=unique_name) == []
    url = sent_urls(client)[0]
    path = url.split("/v1.0/", 1)[1]
    assert path.startswith("applications(uniqueName='") and path.endswith("')")
    assert "/" not in path and "#" not in path and "?" not in path and " " not in path
    assert requests.utils.unquote(path) == "applications(uniqueName='%s')" % unique_name


def test_a_value_with_control_characters_is_refused_before_any_request():
    client = graph_client([])
    with pytest.raises(_http.ServiceError, match="control characters"):
        client.find_applications(unique_name="ce-email\n")
    assert sent_urls(client) == []
    with pytest.raises(_http.ServiceError, match="nothing was sent"):
        ce_portal.CePortal("https://ce.example.com", token="t").get_gateway("gw\x00")


def test_url_problem_refuses_spaces_control_characters_and_non_http_schemes():
    assert "spaces or control characters" in _http.url_problem("ce_url", "https://ce.example.com\n")
    assert "not a URL such as" in _http.url_problem("ce_url", "ftp://ce.example.com")
    assert "not a URL" in _http.url_problem("ce_url", "https://ce.example.com:99999")
    assert _http.url_problem("ce_url", "https://ce.example.com:8443/portal") is None
    assert json.dumps(_http.shown_url("user:%s@host/path?q#f" % PASSWORD)) == '"<credentials>@host/path"'
