"""pytest plugin: `pytest_plugins = ["ceops_lab.testing"]` in the root conftest.py.

Fixtures:
  lab        session-scoped: a lab started in a temporary state dir (stopped at the end); a LabAdmin.
  fresh_lab  function-scoped: the same lab after reset() (state, counters, journal, faults back to seed).
  brownfield_lab, fresh_brownfield_lab   the same for a lab of the brownfield world (its own process).

Helpers for tests that talk to the lab: LabHttpClient (an msal http_client that trusts the lab CA
even where REQUESTS_CA_BUNDLE is set), claims_of / header_of (decode a JWT without verifying it).
"""

import base64
import json

import pytest

from .admin import LabAdmin
from .cli import CliError, start_lab, stop_lab


def _running_lab(tmp_path_factory, world=None):
    state_dir = str(tmp_path_factory.mktemp("ceops-lab-%s" % (world or "default")))
    try:
        start_lab(state_dir, world=world)
    except CliError as exc:
        pytest.fail("could not start the lab (world %s): %s" % (world or "default", exc), pytrace=False)
    return state_dir


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    state_dir = _running_lab(tmp_path_factory)
    try:
        yield LabAdmin(state_dir)
    finally:
        stop_lab(state_dir)


@pytest.fixture
def fresh_lab(lab):
    lab.reset()
    yield lab


@pytest.fixture(scope="session")
def brownfield_lab(tmp_path_factory):
    """A second lab, of the brownfield world (lab/README.md): directories where the runbook was walked by hand."""
    state_dir = _running_lab(tmp_path_factory, world="brownfield")
    try:
        yield LabAdmin(state_dir)
    finally:
        stop_lab(state_dir)


@pytest.fixture
def fresh_brownfield_lab(brownfield_lab):
    brownfield_lab.reset()
    yield brownfield_lab


def _b64_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def claims_of(token):
    """The claims of a JWT, not verified."""
    return _b64_json(token.split(".")[1])


def header_of(token):
    return _b64_json(token.split(".")[0])


class LabHttpClient:
    """An http_client for msal (get / post / close) that passes verify=<lab CA> on every call:
    REQUESTS_CA_BUNDLE overrides Session.verify, but not a per-request verify argument."""

    def __init__(self, ca_file, timeout=10):
        import requests  # the lab itself does not depend on requests; its test helpers may

        self.ca_file = ca_file
        self.timeout = timeout
        self.session = requests.Session()

    def get(self, url, **kwargs):
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, **kwargs)

    def post(self, url, **kwargs):
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(url, **kwargs)

    def close(self):
        self.session.close()
