# -*- coding: utf-8 -*-
"""Issue 8, least privilege: the rights docs/security.md lists per playbook are enough, and each one is needed.

The lab enforces them as the services do: Graph application permissions on the automation identity's tokens,
Exchange.ManageAsApp plus an Entra directory role for Exchange cmdlets, and the CE Portal's deployment / tenant
administrator split. The playbook test converges three CE tenants in three directories from a fresh lab with exactly the
documented rights, then takes one right away for each and shows each fails alone with a line that names what is
missing, changing nothing. Every documented right is also taken away on its own from the module that needs it.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest

from ce_support import ce_args
from security_support import automation, exchange_knows_the_automation, ms, permission
from lab_fleet import REPO, Fleet

# What docs/security.md says the automation identity of a directory needs for site.yml (the union of the playbooks').
GRAPH_PERMISSIONS = {"Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"}
EXCHANGE_PERMISSIONS = {"Exchange.ManageAsApp"}
DIRECTORY_ROLES = {"Exchange Administrator"}
DIRECTORIES = ("contoso", "fabrikam", "northwind")


def documented():
    with open(os.path.join(REPO, "docs", "security.md")) as handle:
        return handle.read()


def give_exactly_the_documented_rights(lab):
    for name in DIRECTORIES:
        graph = set(lab.grant_app_roles(name, *sorted(GRAPH_PERMISSIONS)))
        lab.revoke_app_roles(name, *sorted(graph - GRAPH_PERMISSIONS))
        exchange = set(lab.grant_app_roles(name, *sorted(EXCHANGE_PERMISSIONS), resource="exchange"))
        lab.revoke_app_roles(name, *sorted(exchange - EXCHANGE_PERMISSIONS), resource="exchange")
        roles = set(lab.grant_directory_roles(name, *sorted(DIRECTORY_ROLES)))
        lab.revoke_directory_roles(name, *sorted(roles - DIRECTORY_ROLES))
        assert set(lab.grant_app_roles(name)) == GRAPH_PERMISSIONS
        assert set(lab.grant_app_roles(name, resource="exchange")) == EXCHANGE_PERMISSIONS
        assert set(lab.grant_directory_roles(name)) == DIRECTORY_ROLES


def summary_failure(output, host):
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if re.search(r'"%s\s+FAILED' % re.escape(host), line))
    return lines[index + 1].strip()


def test_the_documented_rights_are_the_ones_the_tests_use():
    text = documented()
    for right in sorted(GRAPH_PERMISSIONS | EXCHANGE_PERMISSIONS | DIRECTORY_ROLES) + ["deployment administrator", "tenant administrator"]:
        assert right in text, right
    for playbook in ("azuread.yml", "exchange_online.yml", "ce.yml", "verify.yml", "rotate_secret.yml", "secret_report.yml"):
        assert "`%s`" % playbook in text, playbook


def test_site_runs_with_exactly_the_documented_rights_and_each_one_less_fails_alone(fresh_lab, tmp_path):
    lab, fleet = fresh_lab, Fleet(fresh_lab, tmp_path)
    limit = ("--limit", "acme,initech,hooli,localhost")
    give_exactly_the_documented_rights(lab)
    exact = fleet.run("site.yml", *limit, apps=False)
    (tmp_path / "exact.log").write_text(exact.output)
    assert exact.returncode == 0, exact.output[-3000:]
    for host in ("acme", "initech", "hooli"):
        assert re.search(r'"%s\s+ok\s.*logins (\d+)/\1 ok' % host, exact.output), host

    # One right less for each CE tenant's part, on the converged fleet: acme's directory has no Exchange role; hooli's
    # identity lost Application.ReadWrite.All (and with it any read of applications); initech's CE credential is another
    # tenant's administrator's, which may not touch initech's OAuth settings. (The deployment's gateway is its lead's work,
    # with the deployment administrator's credential: docs/fleet.md.)
    lab.revoke_directory_roles("contoso", "Exchange Administrator")
    lab.revoke_app_roles("northwind", "Application.ReadWrite.All")
    other_tenant_admin = lab.vars["lab_ce_deployments"]["emea"]["tenants"]["acme"]["admin_token"]
    contoso_before = lab.exchange_state("contoso")
    short = fleet.run("site.yml", *limit, apps=False, host_vars={"initech": {"ce_token": other_tenant_admin}})
    (tmp_path / "one-less.log").write_text(short.output)
    assert short.returncode != 0
    acme, hooli, initech = (summary_failure(short.output, host) for host in ("acme", "hooli", "initech"))
    assert acme.startswith('"    Exchange Online:') and "Exchange Administrator" in acme, acme
    assert hooli.startswith('"    Azure AD:') and "Application.ReadWrite.All" in hooli, hooli
    assert initech.startswith('"    CE:') and "HTTP 403" in initech and "tenant initech" in initech, initech
    assert lab.exchange_state("contoso") == contoso_before  # the failed Exchange part changed nothing there


# -- each documented right, taken away alone, from the module that needs it ----------------------------------------------
def consent(lab):
    return ms(lab, display_name="CE Email", unique_name="ce-email")


def register_in_exchange(lab):
    d = automation(lab)
    return ms(lab, app_id=d["automation_client_id"], object_id=d["automation_service_principal_id"])


def gateway_as_tenant_admin(lab):
    return ce_args(lab, tenant_admin="acme", name="Exchange Online")


@pytest.mark.parametrize("right,take_away,module,make_args,fragments", [
    ("Application.ReadWrite.All", lambda lab: lab.revoke_app_roles("contoso", "Application.ReadWrite.All"), "azuread_app", consent,
     ["Application.ReadWrite.All"]),
    ("AppRoleAssignment.ReadWrite.All", lambda lab: lab.revoke_app_roles("contoso", "AppRoleAssignment.ReadWrite.All"), "azuread_app",
     consent, ["AppRoleAssignment.ReadWrite.All"]),
    ("Exchange.ManageAsApp", lambda lab: lab.revoke_app_roles("contoso", "Exchange.ManageAsApp", resource="exchange"),
     "exo_service_principal", register_in_exchange, ["Exchange.ManageAsApp"]),
    ("Exchange Administrator", lambda lab: lab.revoke_directory_roles("contoso", "Exchange Administrator"),
     "exo_mailbox_permission", lambda lab: permission(lab, ["ce-support@contoso.onmicrosoft.com"]), ["Exchange Administrator"]),
    ("CE deployment administrator", None, "ce_email_gateway", gateway_as_tenant_admin, ["HTTP 403", "deployment administrator"]),
])
def test_each_documented_right_is_needed(fresh_lab, run_module, right, take_away, module, make_args, fragments):
    give_exactly_the_documented_rights(fresh_lab)
    exchange_knows_the_automation(fresh_lab)
    if take_away:
        take_away(fresh_lab)
    result = run_module(module, make_args(fresh_lab))
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]


def test_a_tenant_administrator_is_enough_for_its_own_oauth_settings_and_connection(fresh_lab, run_module):
    """The CE rights split as documented: the deployment administrator makes the gateway once, each tenant's own
    administrator can do the rest of ce.yml for that tenant."""
    assert not run_module("ce_email_gateway", ce_args(fresh_lab, name="Exchange Online")).get("failed")
    d = automation(fresh_lab)
    settings = run_module("ce_oauth_settings", ce_args(fresh_lab, tenant_admin="acme", ce_tenant="acme", name="Exchange Online OAuth",
                                                       client_id=d["automation_client_id"], client_secret="tenant-admin-test-secret",
                                                       tenant_id=d["tenant_id"]))
    assert settings.get("failed") is not True and settings["changed"] is True, settings.get("msg")
    connection = run_module("ce_email_connection", ce_args(fresh_lab, tenant_admin="acme", ce_tenant="acme", name="Exchange Online",
                                                           gateway="Exchange Online", oauth_settings="Exchange Online OAuth"))
    assert connection.get("failed") is not True and connection["changed"] is True, connection.get("msg")
    update = run_module("ce_batch_update", ce_args(fresh_lab, tenant_admin="acme", poll_interval=0.2))
    assert update.get("failed") is not True and update["changed"] is True, update.get("msg")
