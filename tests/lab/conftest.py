"""Fixtures for the lab's own tests. `lab` / `fresh_lab` come from the ceops_lab.testing plugin
(loaded by the root conftest, or with `-p ceops_lab.testing`).

REQUESTS_CA_BUNDLE is set machine-wide here and overrides Session.verify, so every request
passes verify=<lab CA> explicitly.
"""

import pytest
import requests


class Graph:
    """A minimal Graph caller bound to one token (another token per call with token=...)."""

    def __init__(self, lab, token):
        self.lab = lab
        self.token = token
        self.base = lab.graph_url + "/v1.0"
        self.session = requests.Session()

    def call(self, method, path, body=None, headers=None, token=None):
        all_headers = {"Authorization": "Bearer " + (token or self.token)}
        all_headers.update(headers or {})
        url = path if path.startswith("https://") else self.base + path
        return self.session.request(method, url, json=body, headers=all_headers, verify=self.lab.ca_file, timeout=10)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)

    def create_app(self, name, **fields):
        response = self.post("/applications", dict(fields, displayName=name))
        assert response.status_code == 201, response.text
        return response.json()

    def create_sp(self, app_id):
        response = self.post("/servicePrincipals", {"appId": app_id})
        assert response.status_code == 201, response.text
        return response.json()

    def resource_sp(self, app_id):
        response = self.get("/servicePrincipals(appId='%s')" % app_id)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def contoso(fresh_lab):
    """contoso's ids and automation credentials, after a reset of the lab."""
    return fresh_lab.directory("contoso")


@pytest.fixture
def graph(fresh_lab, contoso):
    """A Graph caller with a fresh token of contoso's automation identity."""
    caller = Graph(fresh_lab, fresh_lab.token("contoso"))
    yield caller
    caller.session.close()


@pytest.fixture
def token_request(lab):
    """POST a form to the lab's token endpoint of a tenant: (status, headers, JSON body)."""
    def _post(tenant, form, headers=None):
        return lab.request("POST", "%s/%s/oauth2/v2.0/token" % (lab.login_url, tenant), form=form, headers=headers)
    return _post
