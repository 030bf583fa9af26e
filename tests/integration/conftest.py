# -*- coding: utf-8 -*-
"""Run the collection's modules in-process against the lab, as Ansible would run them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import run_module_main


class ModuleRunner:
    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, name, args, check_mode=False, diff=True):
        # None is "not given", as omit in a task.
        return run_module_main(self.capsys, name, dict((k, v) for k, v in args.items() if v is not None), check_mode, diff)


@pytest.fixture
def run_module(capsys, tmp_path, monkeypatch):
    # A private token cache per test, through the environment as a controller would set it.
    monkeypatch.setenv("CEOPS_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    return ModuleRunner(capsys)


def lab_directory_auth(lab, name="contoso", **overrides):
    """Module options for the automation identity of one lab directory."""
    d = lab.vars["lab_directories"][name]
    args = dict(tenant_id=d["tenant_id"], client_id=d["automation_client_id"], client_secret=d["automation_client_secret"],
                authority_host=lab.vars["lab_authority_host"], graph_endpoint=lab.vars["lab_graph_endpoint"],
                ca_path=lab.vars["lab_ca_path"])
    args.update(overrides)
    return args


@pytest.fixture
def directory_auth():
    """``directory_auth(lab, name="contoso", **overrides)`` -> Microsoft module options for that directory."""
    return lab_directory_auth
