# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's decisions as one filter for the collection's roles and playbooks (docs/fleet.md):
``value | ceops.exchange_oauth.fleet('<rule>', ...)``.

Each rule passes plain data to a function in plugins/plugin_utils/fleet.py, which is where the rule is written and
tested. ``members`` is the one place that reads other hosts' variables: it turns CE tenants into the plain views every
other rule takes.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import fleet, in_process

# Inventory variables and facts a view is made of: (view key, variable).
VIEW_VARIABLES = (
    ("ce_tenant", "ce_tenant"), ("tenant_id", "ms_tenant_id"), ("deployment", "ce_url"),
    ("failures", "ceops_failures"), ("mailboxes", "ce_mailboxes"),
    ("lifetime_days", "azuread_app_registration_secret_lifetime_days"),
    ("renew_before_days", "azuread_app_registration_secret_renew_before_days"),
    ("app", "azuread_app_registration_app"), ("access", "exchange_online_access_result"),
    ("gateway", "ce_email_oauth_gateway"), ("settings", "ce_email_oauth_settings_result"),
    ("delivery", "ce_email_oauth_delivery_result"), ("connection", "ce_email_oauth_connection_result"),
    ("batch_update", "ce_email_oauth_batch_update_outcome"), ("proof", "mailbox_oauth_verify_result"),
    ("mailboxes_removed", "ce_mailboxes_removed"), ("revoked", "exchange_online_access_revoked"), ("offboard", "ce_email_oauth_offboard"),
)


def _get(host_vars, name, default=None):
    try:
        value = host_vars[name]
    except KeyError:
        return default
    return default if value is None else value


def fleet_members(hosts, hostvars, secret_base_name=fleet.DEFAULT_SECRET_NAME):
    """The views of ``hosts`` (CE tenants): what the fleet's rules need of each, from its inventory and the facts the
    parts handed it."""
    views = []
    for host in hosts or []:
        host_vars = hostvars[host]
        view = dict((key, _get(host_vars, name)) for key, name in VIEW_VARIABLES)
        view.update(host=host, per_ce_tenant=fleet.as_bool(_get(host_vars, "ceops_app_per_ce_tenant", False)),
                    sends=fleet.as_bool(_get(host_vars, "ce_send_with_oauth", False)),
                    rotate=fleet.as_bool(_get(host_vars, "azuread_app_registration_secret_rotate", False)),
                    mailboxes_from_portal=fleet.as_bool(_get(host_vars, "ce_mailboxes_from_portal", False)),
                    require_secret=fleet.as_bool(_get(host_vars, "mailbox_oauth_verify_require_secret", False)),
                    force=fleet.as_bool(_get(host_vars, "rotate_secret_force", False)),
                    skip_proof=fleet.as_bool(_get(host_vars, "ceops_skip_proof", False)),
                    revoke_unlisted=fleet.as_bool(_get(host_vars, "ceops_revoke_mailboxes", False)),
                    failures=list(view["failures"] or []), mailboxes=list(view["mailboxes"] or []))
        view["secret_name"] = fleet.secret_name(view, _get(host_vars, "azuread_app_registration_secret_name", secret_base_name))
        apps = _get(host_vars, "ms_apps", {}) or {}
        vault = (apps.get(view["tenant_id"]) or {}) if isinstance(apps, dict) else {}
        if not view["app"] and vault.get("app_id"):
            # A part run alone knows CE's app from the inventory only.
            view["app"] = {"app_id": vault.get("app_id"), "service_principal_id": vault.get("service_principal_id")}
        # The secret store (ceops_secret_store), as the run read it at its start: this CE tenant's entries, and the one that is
        # CE's secret; a part run alone that has no ms_apps learns CE's app from it.
        view["secret_store"] = _get(host_vars, "ceops_secret_store") or None
        view["secret_store_read"] = _get(host_vars, "ceops_secret_store_result")
        view["stored"] = [e for e in _get(host_vars, "ceops_secret_store_entries", []) if e.get("ce_tenant") == host] if view["secret_store"] else []
        view["stored_secret"] = fleet.stored_secret(view) if view["stored"] else None
        if not view["app"] and view["stored_secret"]:
            view["app"] = {"app_id": view["stored_secret"]["app_id"]}
        # The proof's given secret: the operator's, else the store's, else the copy in Ansible Vault (ms_apps).
        view["vault_secret"] = _get(host_vars, "mailbox_oauth_verify_client_secret") or (view["stored_secret"] or {}).get("client_secret") \
            or (vault.get("client_secrets") or {}).get(host) or vault.get("client_secret")
        view["ce"] = fleet.ce_result(view["settings"], view["delivery"], view["connection"], view["gateway"], view["batch_update"])
        views.append(view)
    return views


def fleet_stored_secret(host, hostvars):
    """The secret store's entry that is CE's secret for the CE tenant ``host`` (fleet.stored_secret), or {}: what the roles
    give CE (ce.yml alone) and prove with (verify.yml alone) when the run did not make the secret itself."""
    if not _get(hostvars[host], "ceops_secret_store"):
        return {}
    return fleet_members([host], hostvars)[0]["stored_secret"] or {}


def fleet_inventory(hosts, hostvars):
    """What the election needs of every host of the inventory (a run may not see all): its directory and whether it has an
    app of its own. Read once per run, by the election (fleet.elect), which hands each app unit its inventory_members."""
    entries = []
    for host in hosts or []:
        host_vars = hostvars[host]
        tenant_id = _get(host_vars, "ms_tenant_id")
        if tenant_id:
            entries.append({"host": host, "tenant_id": tenant_id,
                            "per_ce_tenant": fleet.as_bool(_get(host_vars, "ceops_app_per_ce_tenant", False))})
    return entries


def fleet_unit_members(leads, hostvars, unit="ceops_app_unit"):
    """The CE tenants of the units the hosts ``leads`` stand for (their ``ceops_app_unit`` or ``ceops_deployment_unit``)."""
    members = []
    for lead in leads or []:
        members.extend((_get(hostvars[lead], unit, {}) or {}).get("members") or [])
    return members


def fleet_unit_views(unit, hostvars):
    """(the unit's CE tenants in the run, every CE tenant of the unit in the inventory) as views."""
    unit = unit or {}
    return (fleet_members(unit.get("members"), hostvars),
            fleet_members(unit.get("inventory_members") or unit.get("members"), hostvars))


def fleet_revocation_leads(leads, hostvars, offboarding=False):
    """The CE tenants standing for apps whose unit has mailboxes that may lose CE's FullAccess now (fleet.mailbox_revocations):
    the hosts of the play that revokes."""
    found = []
    for lead in leads or []:
        views, inventory_views = fleet_unit_views(_get(hostvars[lead], "ceops_app_unit", {}), hostvars)
        if fleet.mailbox_revocations(views, inventory_views, offboarding)["candidates"]:
            found.append(lead)
    return found


def fleet_proof_secret(ce_result, app, given=None, ce_part_ran=True):
    secret, reason = fleet.proof_secret(ce_result, app, given, ce_part_ran)
    return {"secret": secret or "", "reason": reason}


def fleet_retire(views, grace_hours=None, offboarding=False):
    """azuread_app app_secrets entries that remove each live member's secrets it no longer needs (remove_key_ids), with why;
    offboarding (the CE tenants of the run leave), every secret of its own."""
    entries = []
    for view in fleet.alive(views):
        key_ids, why = (fleet.offboard_key_ids(view), "the CE tenant leaves") if offboarding else fleet.retire_key_ids(view, grace_hours)
        if key_ids:
            entries.append({"name": view["secret_name"], "remove_key_ids": key_ids, "reason": why})
    return entries


def fleet_hosts(pattern):
    """The fleet play's host pattern, as given. The controller works it out itself, before it forks any worker for the run's
    tasks: this filter, and with it what the collection's modules import (in_process.preload), are then loaded once for the
    run and inherited by every worker, where each worker would otherwise import them again (docs/benchmark.md)."""
    in_process.preload()
    return pattern


# The rules the roles and playbooks call, by name: ``value | ceops.exchange_oauth.fleet('<rule>', ...)``.
RULES = {
    "hosts": fleet_hosts,
    "members": fleet_members,
    "elect": fleet.elect,
    "inventory": fleet_inventory,
    "unit_members": fleet_unit_members,
    "new_secret_hosts": fleet.new_secret_hosts,
    "unit_failure": fleet.unit_failure,
    "alive": fleet.alive,
    "secret_reports": fleet.secret_report_entries,
    "exchange_permissions": fleet.exchange_permissions,
    "app_handoff": fleet.app_handoff,
    "secrets_to_make": fleet.secrets_to_make,
    "secret_entries": fleet.azuread_secret_entries,
    "secret_handoff": fleet.secret_handoff,
    "mailboxes": fleet.unit_mailboxes,
    "exchange_handoff": fleet.exchange_handoff,
    "revocation_leads": fleet_revocation_leads,
    "revocations": fleet.mailbox_revocations,
    "revocation_handoff": fleet.revocation_handoff,
    "gateway_handoff": fleet.gateway_handoff,
    "deployment_changed": fleet.deployment_changed,
    "ce_result": fleet.ce_result,
    "settings_name": fleet.settings_name,
    "secret_unavailable": fleet.secret_unavailable,
    "batch_handoff": fleet.batch_handoff,
    "proof_secret": fleet_proof_secret,
    "stored_secret": fleet_stored_secret,
    "store_update": fleet.store_update,
    "retire": fleet_retire,
    "offboard_plan": fleet.offboard_plan,
    "offboard_ce": fleet.offboard_ce,
    "app_removal": fleet.app_removal,
    "app_removal_handoff": fleet.app_removal_handoff,
    "summary": fleet.summary,
    "report_files": fleet.report_files,
    "secret_report": fleet.secret_report,
    "failure": fleet.failure,
}


def fleet_rule(value, rule, *args, **kwargs):
    """``value | ceops.exchange_oauth.fleet('<rule>', ...)``: the fleet rule of that name applied to ``value``."""
    try:
        apply = RULES[rule]
    except (KeyError, TypeError):
        raise AnsibleFilterError("ceops.exchange_oauth.fleet: no rule %r; the rules are %s" % (rule, ", ".join(sorted(RULES))))
    return apply(value, *args, **kwargs)


class FilterModule:
    def filters(self):
        return {"fleet": fleet_rule}
