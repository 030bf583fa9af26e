# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to this collection: the fleet's decisions (docs/fleet.md).

The playbooks and roles pass values and call; everything that picks, compares or computes is here, called through the
filters of plugins/filter/fleet.py. Plain data in, plain data out (no Ansible objects), so each rule has a unit test.

The words used:
- a CE tenant is an inventory host; its *view* is the dict ``member_view`` builds from its variables and facts;
- an *app unit* is the CE tenants that share one app registration (those of a Microsoft directory, or one CE tenant with
  ceops_app_per_ce_tenant); a *deployment* is the CE tenants of one CE Portal;
- the *lead* of a unit is the CE tenant that stands for it: the unit's plays run on leads only, and hand each member
  its own share of the result.
"""

from __future__ import annotations

import datetime
import json
import re

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.timestamps import parse_time
from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import secret_store

APP_GROUP = "ceops_app_leads"
DEPLOYMENT_GROUP = "ceops_deployment_leads"
# CE tenants whose mailboxes are read from their CE connection (ce_mailboxes_from_portal): a play of their own.
PORTAL_MAILBOXES_GROUP = "ceops_portal_mailboxes"
# The app leads of a run with a secret store (ceops_secret_store): the plays that keep the store run on them only, so a run
# without a store spends no host-task on it.
SECRET_STORE_GROUP = "ceops_secret_store_leads"
DEFAULT_SECRET_NAME = "CE mailbox access"
SEND_PERMISSION = "SMTP.SendAsApp"
CAPABILITY_OAUTH_SEND = "oauth_send_smtp"


# -- small helpers ------------------------------------------------------------------------------------------------------
def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def failure(part, message, task=None, view=None):
    """One recorded failure of a CE tenant. ``message`` is the message, or the failed task's result (a rescue's
    ansible_failed_result): CE's settings needing a secret the run cannot make (``client_secret_required``) get the message
    that says how to get one, for the CE tenant ``view``."""
    if isinstance(message, dict):
        result = message
        message = result.get("msg")
        if result.get("client_secret_required") and view:
            message = secret_unavailable(view, (result.get("oauth_settings") or {}).get("name"))
    return {"part": part, "task": task or "", "message": str(message or "failed without a message")}


def failed(view):
    return bool(view.get("failures"))


def alive(views):
    """The views of the CE tenants that have not failed, in order."""
    return [v for v in views if not failed(v)]


def lowered(addresses):
    """Mailbox addresses trimmed and lower-cased (Exchange addresses are case-insensitive), duplicates dropped, in order."""
    seen, result = set(), []
    for address in addresses or []:
        key = str(address).strip().lower()
        if key and key not in seen:
            seen.add(key)
            result.append(key)
    return result


def as_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y", "t")


# -- the fleet model ----------------------------------------------------------------------------------------------------
def app_unit_key(view):
    """CE tenants with the same key share one app registration."""
    if view.get("per_ce_tenant"):
        return "%s/%s" % (view["tenant_id"], view["host"])
    return view["tenant_id"]


def secret_name(view, base_name=DEFAULT_SECRET_NAME):
    """Each CE tenant's own client secret in its app: named after it in a shared app, the plain name in an app of its own."""
    return base_name if view.get("per_ce_tenant") else "%s (%s)" % (base_name, view["host"])


def inventory_problems(view):
    """What in a CE tenant's inventory keeps it out of the fleet, found before any request."""
    problems = []
    if not view.get("tenant_id"):
        problems.append("ms_tenant_id is not set: the Directory (tenant) ID of the Microsoft directory holding its mailboxes")
    if not view.get("deployment"):
        problems.append("ce_url is not set: the base URL of its CE deployment's Portal")
    if not view.get("ce_tenant"):
        problems.append("ce_tenant is not set: its short code in the CE Portal")
    return problems


def elect(views, inventory=None):
    """The add_host entries that make the fleet: each app unit's and each CE deployment's lead joins its group and carries
    the unit (its key, directory or URL, and members). A CE tenant already failed, or whose inventory keeps it out, leads
    nothing and is a member of nothing; one with inventory problems gets them as its failures. Sorted, so the same CE
    tenant leads every run whatever order the hosts come in.

    ``inventory``: every CE tenant of the inventory ({host, tenant_id, per_ce_tenant}, not only those of the run), so an app
    unit also carries ``inventory_members``, the CE tenants that share its app whether in the run or not (what a --limit run
    must not take from the others: the send permission, mailbox revocations, the app's removal). Worked out here, once per
    run, so that no later task reads the whole inventory's variables again."""
    entries, apps, deployments = {}, {}, {}
    for view in sorted(views, key=lambda v: v["host"]):
        host = view["host"]
        problems = inventory_problems(view)
        if problems:
            entries[host] = {"name": host, "groups": [],
                             "ceops_failures": list(view.get("failures") or []) + [failure("Inventory", "CE tenant %s: %s" % (host, "; ".join(problems)))]}
            continue
        store_problem = secret_store_problem(view)
        if store_problem:
            entries[host] = {"name": host, "groups": [],
                             "ceops_failures": list(view.get("failures") or []) + [failure("Secret store", store_problem)]}
            continue
        if failed(view):
            continue
        if view.get("mailboxes_from_portal"):
            entries.setdefault(host, {"name": host, "groups": []})["groups"].append(PORTAL_MAILBOXES_GROUP)
        apps.setdefault(app_unit_key(view), {"key": app_unit_key(view), "tenant_id": view["tenant_id"], "members": []})["members"].append(host)
        deployments.setdefault(view["deployment"], {"key": view["deployment"], "url": view["deployment"], "members": []})["members"].append(host)
    for unit in apps.values():
        unit["inventory_members"] = sorted(set(unit["members"]) | set(
            entry["host"] for entry in inventory or [] if entry.get("tenant_id") and app_unit_key(entry) == unit["key"]))
    by_host = dict((v["host"], v) for v in views)
    for group, units, var in ((APP_GROUP, apps, "ceops_app_unit"), (DEPLOYMENT_GROUP, deployments, "ceops_deployment_unit")):
        for unit in units.values():
            lead = unit["members"][0]
            entry = entries.setdefault(lead, {"name": lead, "groups": []})
            entry["groups"].append(group)
            entry[var] = unit
            if group == APP_GROUP and by_host[lead].get("secret_store"):
                entry["groups"].append(SECRET_STORE_GROUP)
    return [entries[host] for host in sorted(entries)]


def secret_store_problem(view):
    """Why the secret store stops this CE tenant, or None: the run's read of the store failed (it cannot be decrypted, is not
    encrypted, is a link; no vault secret to keep a new one with), or the CE tenant names another store than the one the run
    read. Found before anything is made: a run must not make secrets it cannot keep."""
    if not view.get("secret_store"):
        return None
    read = view.get("secret_store_read") or {}
    if read.get("failed"):
        return read.get("msg") or "the secret store %s could not be read" % view["secret_store"]
    if not read.get("path") or secret_store.store_path(view["secret_store"]) != read["path"]:
        return ("CE tenant %s names the secret store %s, but this run reads %s: set ceops_secret_store once for the run (group_vars/all "
                "or -e), not per CE tenant" % (view["host"], view["secret_store"], read.get("path") or "none"))
    return None


# -- the Azure AD part ---------------------------------------------------------------------------------------------------
def secret_report_entries(views, lifetime_days, renew_before_days):
    """azuread_app app_secrets that only read each live member's own secret and say whether a new one is due."""
    return [{"name": v["secret_name"], "report_only": True, "lifetime_days": int(v.get("lifetime_days") or lifetime_days),
             "renew_before_days": int(v.get("renew_before_days") if v.get("renew_before_days") is not None else renew_before_days)}
            for v in alive(views)]


def directory_sends(views):
    """The app may send (SMTP.SendAsApp) when any CE tenant of the unit sends with OAuth; every inventory CE tenant of the
    unit counts, not only those in this run (views of the whole unit)."""
    return any(v.get("sends") for v in views)


def exchange_permissions(base, views, send_permission=SEND_PERMISSION):
    wanted = list(base or [])
    if directory_sends(views) and send_permission not in wanted:
        wanted.append(send_permission)
    return wanted


def app_fact(result, view, previous=None, keep_secret=True):
    """One CE tenant's share of the unit's azuread_app result: the app's ids, and its own secret only (never another's). The
    value made earlier in the run is kept (the proof and a secret store need it) by the hand-offs that hide their output,
    and left behind by those that show it (``keep_secret`` false)."""
    fact = dict((k, v) for k, v in (previous or {}).items() if keep_secret or k != "client_secret")
    for key in ("tenant_id", "app_id", "object_id", "service_principal_id", "display_name", "unique_name", "found_by", "adopted",
                "exchange_permissions", "consented_permissions", "other_parts"):
        if key in (result or {}):
            fact[key] = result[key]
    # Adopted by an earlier call of the run (a later one finds it by its unique name): the run still adopted it.
    fact["adopted"] = bool((previous or {}).get("adopted") or fact.get("adopted"))
    own = ((result or {}).get("app_secrets") or {}).get(view["secret_name"])
    if own is not None:
        fact.update(client_secret_name=own.get("name"), client_secret_key_id=own.get("key_id"),
                    client_secret_start=own.get("start_date_time"), client_secret_end=own.get("end_date_time"),
                    client_secret_due=own.get("due"), client_secrets=own.get("secrets") or [],
                    # Made in this run, by this call or an earlier one of the run (a later call only removes).
                    client_secret_created=bool(own.get("created") or fact.get("client_secret_created")),
                    client_secret_removed_key_ids=own.get("removed_key_ids") or [],
                    client_secret_expired_key_ids=own.get("expired_key_ids") or [])
        if own.get("client_secret"):
            # The value exists only in this run's memory, and only for the secret it made (which a later call of the run may
            # retire: the key id of the value stays with it, for the secret store).
            fact["client_secret"] = own["client_secret"]
            fact["client_secret_made"] = {"key_id": own.get("key_id"), "start_date_time": own.get("start_date_time"),
                                          "end_date_time": own.get("end_date_time")}
    return fact


def unit_handoff(views, part, result, fact_of, failures_of=None):
    """What the lead hands each live member after the unit's work: ``fact_of(view)`` (its own share of the result), and its
    failures with a new one when the unit's work failed (every member fails with the lead's message) or when
    ``failures_of(view)`` names one of its own. -> [{"host", "fact", "failures"}]"""
    handoff = []
    unit_failed = bool((result or {}).get("failed"))
    for view in alive(views):
        failures = list(view.get("failures") or [])
        if unit_failed:
            failures.append(failure(part, (result or {}).get("msg")))
        elif failures_of:
            failures.extend(failures_of(view))
        handoff.append({"host": view["host"], "fact": fact_of(view), "failures": failures})
    return handoff


def app_handoff(views, result, keep_secret=False):
    return unit_handoff(views, "Azure AD", result, lambda v: app_fact(result, v, v.get("app"), keep_secret))


def rotation_skipped(view, min_age_hours, now=None):
    """Why a rotation leaves this CE tenant alone, or None: its only secret is younger than ``min_age_hours`` and CE has
    held it since (a rotation done moments ago, for example a job started twice)."""
    app = view.get("app") or {}
    secrets = [s for s in app.get("client_secrets") or [] if s.get("key_id")]
    start = parse_time(app.get("client_secret_start"))
    held = (view.get("settings") or {}).get("client_secret_held")
    if view.get("force") or min_age_hours in (None, "") or len(secrets) != 1 or not start or not held:
        return None
    age = ((now or utcnow()) - start).total_seconds() / 3600.0
    if age >= float(min_age_hours):
        return None
    return ("its only secret is %.1f h old (less than %s h) and CE holds it; rotate_secret_force=true rotates anyway" % (age, min_age_hours))


def secrets_to_make(views, rotate=False, min_age_hours=None, now=None):
    """The live members that need a new client secret of their own now, and why: CE needs one and none is held (its
    settings do not exist, hold none, name another app, or got theirs before the current secret was made), the newest
    expires within the renewal window (a renewal, which reaches CE in the same run), or a rotation is asked for.
    -> azuread_app app_secrets entries (rotate: a new one whatever the expiry)."""
    entries = []
    for view in alive(views):
        settings = view.get("settings") or {}
        app = view.get("app") or {}
        reason = None
        if not app.get("app_id"):
            continue  # no app (a plan, or ce.yml alone before azuread.yml): nothing to make a secret of
        if settings.get("client_secret_needed"):
            reason = settings.get("client_secret_needed_reason") or "CE needs one"
        elif (rotate or view.get("rotate")) and not rotation_skipped(view, min_age_hours, now):
            reason = "rotation asked for"
        elif app.get("client_secret_due") and settings.get("client_secret_held"):
            # A renewal: CE runs on the app's current secret, which is due; the new one reaches CE in the same run. A due
            # secret CE does not hold (or a run that cannot tell) is no reason to make one.
            reason = app["client_secret_due"]
        if reason:
            entries.append({"name": view["secret_name"], "rotate": True, "lifetime_days": int(view.get("lifetime_days") or 365),
                            "renew_before_days": 0, "reason": reason})
    return entries


def secret_handoff(views, result, rotate=False, min_age_hours=None):
    """Each CE tenant that needed a new secret: its own new secret, or the failure. When the task failed after making the
    secrets of some names (a policy refusing a later one), those CE tenants still get theirs. A CE tenant a rotation left
    alone is told why."""
    reasons = dict((e["name"], e["reason"]) for e in secrets_to_make(views, rotate, min_age_hours))
    made = ((result or {}).get("app_secrets") or {})
    handoff = []
    for view in alive(views):
        if view["secret_name"] not in reasons:
            left_alone = rotation_skipped(view, min_age_hours) if rotate or view.get("rotate") else None
            if left_alone:
                fact = dict(view.get("app") or {}, client_secret_left_alone=left_alone)
                handoff.append({"host": view["host"], "fact": fact, "failures": list(view.get("failures") or []),
                                "reason": "left alone: %s" % left_alone})
            continue
        own = made.get(view["secret_name"]) or {}
        failures = list(view.get("failures") or [])
        if (result or {}).get("failed") and not own.get("client_secret"):
            failures.append(failure("Azure AD (new client secret)", (result or {}).get("msg")))
        fact = app_fact(result, view, view.get("app"))
        fact["client_secret_reason"] = reasons[view["secret_name"]]
        handoff.append({"host": view["host"], "fact": fact, "failures": failures, "reason": reasons[view["secret_name"]]})
    return handoff


def azuread_secret_entries(entries):
    """The app_secrets option from secrets_to_make's entries (without the reason, which is for the report)."""
    return [dict((k, v) for k, v in entry.items() if k != "reason") for entry in entries]


# -- the Exchange Online part --------------------------------------------------------------------------------------------
def unit_mailboxes(views):
    """The union of the live members' mailboxes, lower-cased, in order."""
    union = []
    for view in alive(views):
        union.extend(view.get("mailboxes") or [])
    return lowered(union)


def exchange_fact(view, service_principal, permissions, app):
    records = [r for r in ((permissions or {}).get("mailboxes") or []) if r.get("mailbox") in lowered(view.get("mailboxes"))]
    return {"service_principal": {"app_id": (app or {}).get("app_id"),
                                  "object_id": (service_principal or {}).get("object_id") or (app or {}).get("service_principal_id"),
                                  "display_name": (service_principal or {}).get("display_name")},
            "replaced_object_id": (service_principal or {}).get("replaced_object_id"),
            "actions": list((service_principal or {}).get("actions") or []),
            "mailboxes": records}


def mailbox_failures(view, records, fail_on_mailbox_error=True):
    failed_records = [r for r in records if r.get("result") == "failed"]
    if not failed_records or not fail_on_mailbox_error:
        return []
    reasons = "; ".join("%s%s" % (r.get("message"), " (request id %s)" % r["request_id"] if r.get("request_id") else "") for r in failed_records)
    return [failure("Exchange Online", "CE tenant %s, directory %s: %d of %d mailboxes could not be given access: %s. Check these addresses "
                    "in Exchange Online (the mailbox must exist in this directory), or remove them from ce_mailboxes, and run again"
                    % (view["host"], view.get("tenant_id"), len(failed_records), len(records), reasons))]


def exchange_handoff(views, service_principal, permissions, app, fail_on_mailbox_error=True, check_mode=False):
    """Each live member's share of the unit's Exchange Online work. The unit fails as a whole when CE's app is not known
    (outside a plan), or when the service principal or the mailbox task failed as a whole; a mailbox fails only the CE
    tenants that list it."""
    result = None
    if not (app or {}).get("app_id") and not check_mode:
        result = {"failed": True, "msg": "Directory %s: the Application (client) ID and the service principal's object id of CE's app are "
                                         "not known. Run the Azure AD part in the same play (playbooks/site.yml), or give them in the "
                                         "inventory as ms_apps['%s'] with app_id and service_principal_id (what playbooks/azuread.yml "
                                         "prints)" % ((views or [{}])[0].get("tenant_id"), (views or [{}])[0].get("tenant_id"))}
    for part_result in (service_principal, permissions):
        if result is None and (part_result or {}).get("failed"):
            result = part_result

    def fact_of(view):
        return exchange_fact(view, service_principal, permissions, app)

    def failures_of(view):
        return mailbox_failures(view, fact_of(view)["mailboxes"], fail_on_mailbox_error)

    return unit_handoff(views, "Exchange Online", result, fact_of, failures_of)


# -- mailboxes that leave ------------------------------------------------------------------------------------------------
def listed_mailboxes(view, in_run):
    """The mailboxes a CE tenant lists (lower-cased), or None when this run cannot know them: it takes its mailboxes from
    its CE email connection (ce_mailboxes_from_portal) and this run did not read them (it is outside the run, or failed)."""
    if view.get("mailboxes_from_portal") and (not in_run or failed(view)):
        return None
    return lowered(view.get("mailboxes"))


def read_mailboxes(view):
    """What CE reads for a CE tenant: the mailboxes of its email connection as the CE part read them in this run."""
    return lowered((view.get("ce") or {}).get("mailboxes"))


def mailbox_revocations(views, inventory_views, offboarding=False):
    """Which mailboxes of one app unit lose the FullAccess of CE's service principal now, and why others stay
    (docs/ownership.md). ``views``: the unit's CE tenants in the run; ``inventory_views``: every CE tenant of the unit in the
    inventory, so that a --limit run never takes a mailbox from a CE tenant outside it.

    A mailbox is a candidate when the inventory names it in the CE tenant's ce_mailboxes_removed; when the CE tenant's CE email
    connection reads it but its ce_mailboxes does not list it, only where the inventory says the list is complete
    (ceops_revoke_mailboxes: true; the connection's mailbox list is the record of what CE reads: no scan of the Exchange
    organisation); or, for a CE tenant that leaves (offboard.yml), when it lists it or its connection reads it. Not by
    default: in a directory where the runbook was walked by hand, the connection may read mailboxes the inventory forgot, and
    their FullAccess is what keeps CE reading them. A candidate is revoked only when no other CE tenant of the unit lists it;
    when the list of one of them is not known to this run, nothing is revoked.
    -> {"revoke": [...], "candidates": {mailbox: [hosts]}, "kept": {mailbox: [hosts listing it]}, "unknown": [hosts]}"""
    run_hosts = set(v["host"] for v in views)
    candidates = {}
    for view in alive(views):
        listed = lowered(view.get("mailboxes"))
        if offboarding:
            found = listed + read_mailboxes(view)
        else:
            # A CE tenant whose list is its connection's cannot show a mailbox that left it there: ce_mailboxes_removed can.
            unlisted = view.get("revoke_unlisted") and not view.get("mailboxes_from_portal")
            found = [m for m in read_mailboxes(view) if m not in listed] if unlisted else []
            found += lowered(view.get("mailboxes_removed"))
        for mailbox in lowered(found):
            candidates.setdefault(mailbox, []).append(view["host"])
    keep, unknown, seen = {}, [], set()
    for view in list(views) + list(inventory_views or []):
        if view["host"] in seen or (offboarding and view["host"] in run_hosts):
            continue
        seen.add(view["host"])
        listed = listed_mailboxes(view, view["host"] in run_hosts)
        if listed is None:
            unknown.append(view["host"])
            continue
        for mailbox in listed:
            keep.setdefault(mailbox, []).append(view["host"])
    revoke = [] if unknown else [m for m in candidates if m not in keep]
    return {"revoke": revoke, "candidates": candidates, "kept": dict((m, keep[m]) for m in candidates if m in keep), "unknown": unknown}


def revocation_handoff(views, inventory_views, result, offboarding=False, check_mode=False):
    """Each live member's share of the unit's revocation (the exo_mailbox_permission result with state absent): the mailboxes
    of its own that lost CE's FullAccess (or would, in a plan), those its connection still reads although no CE tenant lists
    them, those another CE tenant still lists, and why none went when the run cannot tell. A mailbox that could not be
    revoked fails the CE tenant it came from."""
    decision = mailbox_revocations(views, inventory_views, offboarding)
    records = dict((str(r.get("mailbox") or "").lower(), r) for r in (result or {}).get("mailboxes") or [])
    unit_failed = bool((result or {}).get("failed")) and not records
    held = None
    if decision["unknown"]:
        held = ("CE tenant(s) %s of this directory take their mailboxes from the CE Portal and this run did not read them (not in the "
                "run, or failed): run with them to revoke" % ", ".join(sorted(decision["unknown"])))
    handoff = []
    for view in alive(views):
        mine = [m for m, hosts in decision["candidates"].items() if view["host"] in hosts]
        gone = [m for m in mine if m in decision["revoke"] and not unit_failed and records.get(m, {}).get("result") in ("removed", "unchanged")]
        failed_here = [m for m in mine if m in decision["revoke"] and (unit_failed or records.get(m, {}).get("result") == "failed")]
        fact = {"revoked": [m for m in gone if records[m]["result"] == "removed"],
                "already_gone": [m for m in gone if records[m]["result"] == "unchanged"],
                "still_read": [] if offboarding else [m for m in gone if m in read_mailboxes(view)],
                "kept": dict((m, [h for h in decision["kept"][m] if h != view["host"]]) for m in mine if m in decision["kept"]),
                "held": held if mine else None, "planned": bool(check_mode)}
        failures = list(view.get("failures") or [])
        if failed_here:
            reasons = "; ".join(one_line((records.get(m) or {}).get("message") or (result or {}).get("msg")) for m in failed_here)
            failures.append(failure("Exchange Online", "CE tenant %s, directory %s: the FullAccess of CE's app on %s could not be revoked: %s"
                                    % (view["host"], view.get("tenant_id"), ", ".join(failed_here), reasons)))
        handoff.append({"host": view["host"], "fact": fact, "failures": failures})
    return handoff


# -- the CE part ---------------------------------------------------------------------------------------------------------
def gateway_handoff(views, result, gateway_name):
    """Each live member of a CE deployment: the gateway its connection uses (the adopted one keeps its own name), the CE
    release; a member that sends with OAuth on a release without it fails here, before any secret is made for it."""
    gateway = (result or {}).get("email_gateway") or {}
    capabilities = (result or {}).get("ce_capabilities")

    def fact_of(view):
        return {"gateway": gateway.get("name") or gateway_name, "ce_version": (result or {}).get("ce_version"),
                "capabilities": capabilities, "adopted": bool((result or {}).get("adopted"))}

    def failures_of(view):
        if view.get("sends") and capabilities is not None and CAPABILITY_OAUTH_SEND not in capabilities:
            return [failure("CE", "CE tenant %s: ce_send_with_oauth is set, but CE deployment %s runs CE %s, which cannot send with OAuth "
                                  "(it lacks the capability %s, CE 7.6 or later): upgrade the deployment, or set ce_send_with_oauth: false"
                            % (view["host"], view.get("deployment"), (result or {}).get("ce_version"), CAPABILITY_OAUTH_SEND))]
        return []

    return unit_handoff(views, "CE", result, fact_of, failures_of)


def ce_result(settings, delivery=None, connection=None, gateway=None, batch_update=None):
    """What CE holds for one CE tenant after the CE part, from its tasks' results: the OAuth settings as the Portal last
    returned them, whether they hold a current secret of CE's app (and whether this run gave it), the connection and its
    mailboxes, the release."""
    settings = settings if isinstance(settings, dict) and not settings.get("skipped") else {}
    delivery = delivery if isinstance(delivery, dict) and not delivery.get("skipped") else {}
    connection = connection if isinstance(connection, dict) and not connection.get("skipped") else {}
    latest = delivery or settings
    held = bool(delivery.get("client_secret_held") if delivery else settings.get("client_secret_held"))
    return {
        "ce_version": connection.get("ce_version") or latest.get("ce_version") or (gateway or {}).get("ce_version"),
        "oauth_settings": latest.get("oauth_settings") or settings.get("oauth_settings"),
        "client_secret_held": held and not latest.get("failed"),
        "client_secret_updated": bool(delivery.get("client_secret_updated") or settings.get("client_secret_updated")),
        "client_secret_superseded": bool(delivery.get("client_secret_superseded")),
        "client_secret_needed": bool(settings.get("client_secret_needed")) and not held,
        "email_connection": connection.get("email_connection"),
        "mailboxes": connection.get("mailboxes"),
        "batch_update": batch_update,
    }


def secret_unavailable(view, settings_name=None):
    """The failure of a CE tenant whose OAuth settings must be created with a client secret of CE's app when the run cannot
    make one (no Microsoft credentials for its directory, so it did not read the app either) and none came from Ansible
    Vault."""
    return ("CE tenant %s: its OAuth settings%s need a client secret of CE's app to be created, and this run cannot make one: it "
            "has no Microsoft credentials for directory %s (ms_credentials or AZURE_*). A secret made for this CE tenant ('%s') by "
            "an earlier run that ended before CE got it cannot be read again (Entra shows a value once). Run playbooks/site.yml "
            "(or ce.yml with ms_credentials for that directory): it makes a new secret for this CE tenant and gives it to CE. Or "
            "pass the secret's value from Ansible Vault as ce_email_oauth_client_secret." % (
                view["host"], " '%s'" % settings_name if settings_name else "", view.get("tenant_id"), view.get("secret_name")))


def unit_failure(views, part, result, task=None):
    """A directory's or deployment's work failed outside its modules (a role variable the role's check refused, a template
    that could not be rendered): every live CE tenant of the unit fails with that message, in the summary."""
    return [{"host": v["host"], "failures": list(v.get("failures") or []) + [failure(part, result, task)]} for v in alive(views)]


def new_secret_hosts(views):
    """The CE tenants that got a new client secret in this run (its value is in their app fact): those whose CE it goes to."""
    return [v["host"] for v in alive(views) if (v.get("app") or {}).get("client_secret")]


def settings_name(configured, settings=None, delivery=None):
    """The name of the OAuth settings CE's email connection is to use: the ones the CE part found or wrote (settings made by
    hand that the tenant's connection used are adopted under the name their administrator gave them), else ``configured``."""
    record = ce_result(settings, delivery).get("oauth_settings") or {}
    return record.get("name") or configured


def deployment_changed(views, gateway_result=None):
    """Whether the gateway or any live CE tenant of the deployment changed (or would, in check mode): a plan must show the
    batch update the converge will start."""
    return bool((gateway_result or {}).get("changed")) or any(
        (v.get("settings") or {}).get("changed") or (v.get("delivery") or {}).get("changed") or (v.get("connection") or {}).get("changed")
        or (v.get("offboard") or {}).get("changed") for v in alive(views))


def batch_handoff(views, result):
    return unit_handoff(views, "CE", result, lambda v: (result or {}).get("batch_update"))


# -- CE tenants that leave (playbooks/offboard.yml) ---------------------------------------------------------------------
def offboard_plan(connection, settings_name):
    """What offboarding does to a CE tenant's CE objects, from a read of its email connection (ce_email_connection in check
    mode): the connection to turn OAuth off on (the one CE's part uses, adopted under its own name; None when there is none)
    and its gateway, and the OAuth settings to remove - the ones the connection uses, else those of the configured name."""
    before = ((connection or {}).get("diff") or {}).get("before") or {}
    if (connection or {}).get("skipped") or before.get("state") != "present":
        return {"connection": None, "gateway": None, "settings": settings_name}
    return {"connection": before.get("name"), "gateway": before.get("gateway"), "settings": before.get("oauth_settings") or settings_name}


def offboard_ce(plan, connection=None, settings=None, check_mode=False):
    """What offboarding did (or, in a plan, would do) to one CE tenant's CE objects: the summary's source."""
    connection = connection if isinstance(connection, dict) and not connection.get("skipped") else {}
    settings = settings if isinstance(settings, dict) and not settings.get("skipped") else {}
    return {"connection": (plan or {}).get("connection"), "oauth_turned_off": bool(connection.get("changed")),
            "settings": (plan or {}).get("settings"), "settings_removed": bool(settings.get("changed")),
            "changed": bool(connection.get("changed") or settings.get("changed")), "planned": bool(check_mode)}


def offboard_key_ids(view):
    """Every client secret of a CE tenant that leaves (its own name's only: never another CE tenant's, nor any other)."""
    return [s["key_id"] for s in (view.get("app") or {}).get("client_secrets") or [] if s.get("key_id")]


def app_removal(views, inventory_views, remove=False):
    """Whether the CE tenants that leave take CE's app with them (its Exchange service principal, then the app registration):
    only when the operator says so (ceops_offboard_remove_app), no CE tenant of the app is left in the inventory, and every one
    that leaves left cleanly. -> {"remove": bool, "app_id", "reason"}"""
    leaving = set(v["host"] for v in views)
    app = next(((v.get("app") or {}) for v in views if (v.get("app") or {}).get("app_id")), {})
    staying = sorted(v["host"] for v in inventory_views or [] if v["host"] not in leaving)
    broken = sorted(v["host"] for v in views if failed(v))
    if not app.get("app_id"):
        return {"remove": False, "app_id": None, "reason": "CE's app is not in this directory"}
    if staying:
        reason = "CE tenant(s) %s of the directory stay" % ", ".join(staying)
    elif broken:
        reason = "CE tenant(s) %s did not leave cleanly (see their failures): run again" % ", ".join(broken)
    elif not as_bool(remove):
        reason = ("no CE tenant of the directory is left; ceops_offboard_remove_app: true removes CE's app and its Exchange service "
                  "principal")
    elif app.get("other_parts"):
        # Made by hand and adopted, or changed since: whoever added the rest may use the app (and its Exchange access).
        reason = ("it holds what this collection does not manage (%s), so it stays with its Exchange service principal: remove "
                  "those in the Entra admin center once nothing uses them and run again, or delete the app there"
                  % "; ".join(app["other_parts"]))
    else:
        return {"remove": True, "app_id": app["app_id"], "reason": "no CE tenant of the directory is left"}
    return {"remove": False, "app_id": app["app_id"], "reason": reason}


def app_removal_handoff(views, decision, service_principal=None, application=None, check_mode=False):
    """Each CE tenant that leaves: whether CE's app and its Exchange service principal went (or would, in a plan), or why they
    stay; a removal that failed fails them all."""
    def outcome(result):
        result = result if isinstance(result, dict) and not result.get("skipped") else {}
        return result, bool(result.get("changed"))

    sp_result, sp_removed = outcome(service_principal)
    app_result, app_removed = outcome(application)
    handoff = []
    for view in alive(views):
        failures = list(view.get("failures") or [])
        for part, result in (("Exchange Online", sp_result), ("Azure AD", app_result)):
            if result.get("failed"):
                failures.append(failure(part, "CE tenant %s: removing CE's app %s: %s" % (view["host"], decision.get("app_id"), result.get("msg"))))
        fact = dict(view.get("app") or {}, app_removal={"remove": bool(decision.get("remove")), "reason": decision.get("reason"),
                                                        "service_principal_removed": sp_removed, "app_removed": app_removed,
                                                        "planned": bool(check_mode)})
        fact.pop("client_secret", None)
        handoff.append({"host": view["host"], "fact": fact, "failures": failures})
    return handoff


# -- the proof -----------------------------------------------------------------------------------------------------------
def proof_secret(ce_result, app, given=None, ce_part_ran=True):
    """(secret, None) when the run knows the secret CE holds, else (None, why). CE's secret is write-only, so the proof logs
    in with a value this run gave CE itself; or with ``given`` (from Ansible Vault) when CE's settings hold a current secret
    of CE's app, or when the CE part did not run (verify.yml alone). A secret the run holds but did not give CE (another
    run's got there first, or CE kept one of another app) proves nothing about CE."""
    ce_result = ce_result or {}
    app = app or {}
    if ce_result.get("client_secret_updated") and app.get("client_secret"):
        return app["client_secret"], None
    if given and (not ce_part_ran or ce_result.get("client_secret_held")):
        return given, None
    if ce_result.get("client_secret_superseded"):
        return None, "CE got a client secret from another run after this run made its own, so this run does not hold CE's secret"
    if ce_result.get("client_secret_held"):
        return None, ("CE's client secret is not available to this run (CE holds a current secret of CE's app, given by an earlier run; "
                      "the Portal never shows it; give it from Ansible Vault as ms_apps[<directory>].client_secrets[<CE tenant>])")
    if ce_part_ran:
        return None, "CE's OAuth settings do not hold a current secret of CE's app"
    if not app.get("app_id"):
        return None, "CE's app is not known in this run"
    return None, ("CE's client secret is not known in this run (the Portal never shows it): give it from Ansible Vault as "
                  "ms_apps[<directory>].client_secrets[<CE tenant>] (docs/verify.md)")


# -- the secret store (docs/lifecycle.md) -------------------------------------------------------------------------------
def stored_entries(view):
    """This CE tenant's entries of the secret store as the run read it at its start (``view["stored"]``): its directory, its
    own secret name, and CE's app when the run knows it."""
    app_id = str((view.get("app") or {}).get("app_id") or "").lower()
    return [e for e in view.get("stored") or []
            if e.get("ce_tenant") == view["host"] and str(e.get("tenant_id")).lower() == str(view.get("tenant_id")).lower()
            and e.get("secret_name") == view.get("secret_name") and (not app_id or str(e.get("app_id")).lower() == app_id)]


def stored_secret(view, now=None):
    """The stored secret of this CE tenant (an entry, with its value) or None: when the run knows its app's current own secret
    (the app was read), that one and no other; else the newest by start that has not expired (a part run alone)."""
    entries = stored_entries(view)
    current = str((view.get("app") or {}).get("client_secret_key_id") or "").lower()
    if current:
        return next((e for e in entries if str(e.get("key_id")).lower() == current), None)
    now = now or utcnow()
    valid = [e for e in entries if not (parse_time(e.get("end_date_time")) and parse_time(e.get("end_date_time")) <= now)]
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return max(valid, key=lambda e: (parse_time(e.get("start_date_time")) or oldest, e.get("key_id")), default=None)


def store_update(views):
    """What one app's CE tenants change in the secret store now -> {"add": entries, "remove_key_ids": [...]}:
    - add every secret made for them in this run (its value is in their app fact), before CE gets it, so a run that ends
      before the delivery still keeps it; not one the run has retired again;
    - remove the secrets retired or removed in this run, and the entries whose secret the app no longer has (removed by hand in
      Entra, or by another run), when this run read the app's secret list. Only entries the run read at its start are judged so:
      an entry another run added since (its secret made after this run read the app) is not in this run's list, and stays."""
    add, remove = [], []
    for view in views:
        app = view.get("app") or {}
        made = app.get("client_secret_made") or {}
        if app.get("client_secret") and made.get("key_id") and app.get("app_id"):
            add.append({"tenant_id": view.get("tenant_id"), "app_id": app["app_id"], "key_id": str(made["key_id"]).lower(),
                        "secret_name": view["secret_name"], "ce_tenant": view["host"], "start_date_time": made.get("start_date_time"),
                        "end_date_time": made.get("end_date_time"), "client_secret": app["client_secret"]})
        gone = [str(k).lower() for k in app.get("client_secret_removed_key_ids") or []]
        if "client_secrets" in app and app.get("app_id"):
            listed = set(str(s.get("key_id")).lower() for s in app["client_secrets"] or [])
            gone += [str(e["key_id"]).lower() for e in stored_entries(view) if str(e["key_id"]).lower() not in listed]
        remove.extend(k for k in gone if k not in remove)
    # A secret made and retired in the same run (CE took another run's) is removed, not kept.
    return {"add": [e for e in add if e["key_id"] not in remove], "remove_key_ids": remove}


# -- retiring secrets ----------------------------------------------------------------------------------------------------
def never_held(view, secrets, newest):
    """Key ids of this CE tenant's older secrets that CE cannot hold: before this run gave CE its new one, CE's settings held no
    secret of CE's app, or got theirs before those secrets were made (each run gives CE only the secret it made)."""
    app = view.get("app") or {}
    settings = view.get("settings") or {}
    if "oauth_settings" not in settings:
        return []  # what CE held before is not known
    before = settings["oauth_settings"] or {}
    same_app = str(before.get("client_id") or "").lower() == str(app.get("app_id") or "").lower()
    got = parse_time(before.get("client_secret_updated_at")) if before.get("client_secret_set") and same_app else None
    found = []
    for secret in secrets:
        start = parse_time(secret.get("start_date_time"))
        if secret["key_id"] != newest and (got is None or (start is not None and start > got)):
            found.append(secret["key_id"])
    return found


def retire_key_ids(view, grace_hours=None, now=None):
    """Key ids of this CE tenant's own secrets to remove now, and why. Never a secret CE may be using:
    - this run made a secret that CE did not take (another run gave CE its own first): that one;
    - CE got this run's new secret and the proof passed with it: its older secrets of the name;
    - CE got this run's new secret: the older ones CE never held (made after CE last got a secret: lost by a run that ended);
    - CE holds its newest secret (it got it after that one was made) for at least ``grace_hours``: its older secrets, when
      the proof could not run (the operator's grace period; None: never without a proof)."""
    app = view.get("app") or {}
    ce = view.get("ce") or {}
    secrets = [s for s in app.get("client_secrets") or [] if s.get("key_id")]
    newest = app.get("client_secret_key_id")
    if ce.get("client_secret_superseded") and app.get("client_secret_created"):
        return ([newest], "CE took another run's secret, so the one this run made is not needed") if newest else ([], None)
    older = [s["key_id"] for s in secrets if s["key_id"] != newest]
    if not older or not newest:
        return [], None
    proof = view.get("proof") or {}
    applied = (view.get("batch_update") or {}).get("status") == "succeeded" or (ce.get("batch_update") or {}).get("status") == "succeeded"
    if ce.get("client_secret_updated") and applied and proof.get("mailboxes") and not proof.get("failed_mailboxes"):
        return older, "CE runs on the new secret (applied by batch update) and the proof passed with it"
    never = never_held(view, secrets, newest) if ce.get("client_secret_updated") else []
    if never:
        return never, "CE never held them (made after CE last got a secret of CE's app: a run ended before giving them to CE)"
    held = ce.get("client_secret_held")
    start = parse_time(app.get("client_secret_start"))
    if grace_hours is not None and held and start and (now or utcnow()) - start >= datetime.timedelta(hours=float(grace_hours)):
        return older, "CE has held the newest secret for more than %s hours (grace period)" % grace_hours
    return [], None


# -- the secret report -----------------------------------------------------------------------------------------------------
def secret_report(views, warn_days=30, now=None):
    """Days left of each CE tenant's own secret (playbooks/secret_report.yml): OK, WARNING within ``warn_days``, EXPIRED
    when none is valid, ERROR when the app could not be read. Several valid secrets of its name mean a rotation is
    unfinished: CE may hold any of them, so the soonest expiry counts."""
    now = now or utcnow()
    entries = []
    for view in sorted(views, key=lambda v: v["host"]):
        app = view.get("app") or {}
        secrets = []
        for secret in app.get("client_secrets") or []:
            end = parse_time(secret.get("end_date_time"))
            if secret.get("key_id") and end:
                secrets.append(dict(secret, days_left=int((end - now).total_seconds() // 8640) / 10.0))
        days_left = min((s["days_left"] for s in secrets), default=None)
        if view.get("failures"):
            status, note = "ERROR", one_line(view["failures"][-1].get("message"))
        elif not app.get("app_id"):
            status, note = "ERROR", "CE's app is not in this directory"
        elif not secrets:
            status, note = "EXPIRED", ("no valid secret named %s: CE cannot get a token; run playbooks/site.yml (it makes one and gives it "
                                       "to CE)" % view["secret_name"])
        elif days_left < float(warn_days):
            status, note = "WARNING", ("expires in %s days (threshold %s): run playbooks/site.yml (it renews within the renewal window) "
                                       "or playbooks/rotate_secret.yml" % (days_left, warn_days))
        else:
            status, note = "OK", ""
        if status == "OK" and len(secrets) > 1:
            note = "%d valid secrets of that name: a rotation is unfinished (the next run of site.yml retires the older ones once CE " \
                   "is proven on the newest)" % len(secrets)
        entries.append({"directory": view.get("tenant_id"), "app_id": app.get("app_id"), "secret_name": view["secret_name"],
                        "ce_tenants": [view["host"]], "secrets": secrets, "expired_secrets": len(app.get("client_secret_expired_key_ids") or []),
                        "days_left": days_left, "status": status, "note": note})
    lines = []
    for entry in entries:
        lines.append("%-8s directory %s app %s secret '%s' (%s): %s%s" % (
            entry["status"], entry["directory"], entry["app_id"] or "-", entry["secret_name"], ", ".join(entry["ce_tenants"]),
            "%s days left" % entry["days_left"] if entry["days_left"] is not None else "no valid secret",
            "; " + entry["note"] if entry["note"] else ""))
        for secret in entry["secrets"]:
            lines.append("    key %s from %s until %s: %s days left" % (secret["key_id"], secret.get("start_date_time"),
                                                                        secret.get("end_date_time"), secret["days_left"]))
        if entry["expired_secrets"]:
            lines.append("    %d expired secret(s) of that name (removed by the next run of site.yml)" % entry["expired_secrets"])
    bad = [e for e in entries if e["status"] != "OK"]
    message = "%d CE tenant secret(s) need attention: %s" % (len(bad), "; ".join(
        "%s %s (directory %s): %s" % (e["status"], ", ".join(e["ce_tenants"]), e["directory"], e["note"]) for e in bad)) if bad else ""
    return {"entries": entries, "lines": lines, "bad": bad, "message": message}


# -- the summary ---------------------------------------------------------------------------------------------------------
def revocation_record(revoked):
    """What the summary says of the mailboxes that left a CE tenant (revocation_handoff's fact), or None when none did."""
    revoked = revoked or {}
    record = dict((key, revoked.get(key) or []) for key in ("revoked", "already_gone", "still_read"))
    record.update(kept=revoked.get("kept") or {}, held=revoked.get("held"), planned=bool(revoked.get("planned")))
    return record if any((record["revoked"], record["already_gone"], record["kept"], record["held"])) else None


def revocation_lines(record):
    lines = []
    if record["revoked"]:
        lines.append("    FullAccess %s on %s: no CE tenant of the directory lists %s" % (
            "to be revoked" if record["planned"] else "revoked", ", ".join(record["revoked"]), "it" if len(record["revoked"]) == 1 else "them"))
    if record["still_read"]:
        them = "it" if len(record["still_read"]) == 1 else "them"
        lines.append("    CE's email connection still reads %s, which no CE tenant of the directory lists: CE's app %s no FullAccess there, "
                     "so CE cannot read %s; remove %s from the connection in the CE Portal, or list %s in ce_mailboxes again" % (
                         ", ".join(record["still_read"]), "will have" if record["planned"] else "has", them, them, them))
    for mailbox, hosts in sorted(record["kept"].items()):
        lines.append("    FullAccess kept on %s: %s" % (mailbox, "listed by %s" % ", ".join(hosts) if hosts else "this CE tenant lists it"))
    if record["held"]:
        lines.append("    FullAccess not revoked: %s" % record["held"])
    return lines


def offboard_lines(record):
    """What offboarding did to a CE tenant (or would do, in a plan), as the summary's detail lines."""
    offboard, would = record["offboard"], record["offboard"].get("planned")

    def done(happened, what, otherwise):
        return ("%s %s" % ("to be" if would else "", what)).strip() if happened else otherwise

    lines = ["    email connection '%s': OAuth %s" % (offboard["connection"], done(offboard.get("oauth_turned_off"), "turned off", "off already"))
             if offboard.get("connection") else "    no email connection on CE's gateway",
             "    OAuth settings '%s': %s" % (offboard.get("settings"), done(offboard.get("settings_removed"), "removed", "none left"))]
    if record.get("retired_key_ids"):
        lines.append("    client secret(s) %s: %s" % (", ".join(record["retired_key_ids"]), done(True, "removed", "")))
    removal = offboard.get("app_removal") or {}
    if removal.get("remove"):
        lines.append("    CE's app and its Exchange service principal: %s (%s)" % (done(True, "removed", ""), removal.get("reason")))
    elif removal.get("reason"):
        lines.append("    CE's app stays: %s" % removal["reason"])
    return lines


def summary_record(view, now=None, proof_skipped=False):
    """Everything the summary says of one CE tenant, from what the run knows (also of a CE tenant that failed). A CE tenant
    whose CE part ran (a plan, for one) and that nothing stops is "not converged" until CE holds a current secret of CE's
    app; one whose CE part did not run (a part run alone) is "done", never "ok". A proof skipped on purpose (ceops_skip_proof,
    or --skip-tags proof) is "not checked (skipped)", and never a failure."""
    app = view.get("app") or {}
    access = view.get("access") or {}
    ce = view.get("ce") or {}
    proof = view.get("proof") or {}
    mailboxes = lowered(view.get("mailboxes"))
    granted = [r for r in access.get("mailboxes") or [] if r.get("result") != "failed"]
    held = bool(ce.get("client_secret_held"))
    end = parse_time(app.get("client_secret_end"))
    expired = bool(held and end and end <= (now or utcnow()))
    held = held and not expired
    record = {
        "host": view["host"], "ce_tenant": view.get("ce_tenant"), "directory": view.get("tenant_id"),
        "deployment": view.get("deployment"), "app_id": app.get("app_id"),
        "service_principal_id": app.get("service_principal_id") or (access.get("service_principal") or {}).get("object_id"),
        "adopted": bool(app.get("adopted")), "repaired_object_id": access.get("replaced_object_id"),
        "full_access": {"granted": len(granted), "wanted": len(mailboxes)} if access else None,
        "email_connection": (ce.get("email_connection") or {}).get("name"),
        "ce_holds_current_secret": held,
        "failures": list(view.get("failures") or []),
        "retired_key_ids": list(app.get("client_secret_removed_key_ids") or []),
    }
    if app.get("client_secret_created") and app.get("client_secret_reason"):
        record["new_secret"] = {"key_id": app.get("client_secret_key_id"), "reason": app["client_secret_reason"]}
    if app.get("client_secret_left_alone"):
        record["left_alone"] = app["client_secret_left_alone"]
    revocation = revocation_record(view.get("revoked"))
    if revocation:
        record["revocation"] = revocation
    if view.get("offboard"):
        # A CE tenant that leaves (offboard.yml): what went, or would go in a plan; nothing is said of logins.
        record["offboard"] = dict(view["offboard"], app_removal=app.get("app_removal"))
        record["status"] = "FAILED" if record["failures"] else "to offboard" if view["offboard"].get("planned") else "offboarded"
        return record
    if expired:
        # The secret CE got from this collection has run out (nothing renewed it: a plan, or the proof alone).
        record["failures"].append(failure("CE", "the client secret CE holds expired on %s: run site.yml, which gives CE a new one"
                                          % app.get("client_secret_end")))
    skipped = (proof_skipped or view.get("skip_proof")) and proof.get("mailboxes") is None
    if view.get("require_secret") and proof.get("mailboxes") is None and not record["failures"] and not skipped:
        why = proof_secret(ce, app, view.get("vault_secret"), bool(ce.get("oauth_settings")))[1]
        record["failures"].append(failure("Verify", "the logins could not be checked and mailbox_oauth_verify_require_secret is set: %s"
                                          % (why or "no mailboxes to log in to")))
    if proof.get("mailboxes") is not None:
        record["logins"] = {"checked": True, "ok": sum(1 for m in proof["mailboxes"] if m.get("ok")), "of": len(proof["mailboxes"])}
    elif skipped and not record["failures"]:
        record["logins"] = {"checked": False, "skipped": True, "reason": "skipped"}
    elif (proof or ce) and not record["failures"]:
        record["logins"] = {"checked": False, "reason": proof_secret(ce, app, view.get("vault_secret"), bool(ce.get("oauth_settings")))[1]
                            or "no mailboxes to log in to"}
    # "ok" is CE's truth: no part failed, and CE's settings hold a current secret of CE's app, or (the proof alone) CE's
    # logins passed.
    proven = bool(proof.get("mailboxes")) and not proof.get("failed_mailboxes")
    if record["failures"]:
        record["status"] = "FAILED"
    elif held or proven:
        record["status"] = "ok"
    else:
        # Nothing failed, but CE's settings were not shown to hold a current secret of CE's app: a part run alone, or a plan.
        # The CE part ran (a plan, or a converge that could not give CE a secret), or it did not (a part run alone).
        record["status"] = "not converged" if view.get("settings") else "done"
    return record


def summary_line(record):
    parts = ["%-10s %-6s" % (record["host"], record["status"] if record["status"] != "not converged" else "todo"),
             "directory %s" % (record["directory"] or "-"),
             "app %s" % (record["app_id"] or "-")]
    if record.get("service_principal_id"):
        parts.append("sp %s" % record["service_principal_id"])
    if record["full_access"]:
        parts.append("FullAccess %d/%d" % (record["full_access"]["granted"], record["full_access"]["wanted"]))
    parts.append("CE %s" % (record["email_connection"] or "-"))
    logins = record.get("logins")
    if logins and logins["checked"]:
        parts.append("logins %d/%d ok" % (logins["ok"], logins["of"]))
    elif logins and logins.get("skipped"):
        parts.append("logins not checked (skipped)")
    elif logins:
        parts.append("logins not checked: %s" % logins["reason"])
    lines = ["  ".join(parts)]
    if record.get("offboard"):
        lines.extend(offboard_lines(record))
        lines.extend(revocation_lines(record["revocation"]) if record.get("revocation") else [])
        return lines + failure_lines(record)
    if record.get("new_secret"):
        new = record["new_secret"]
        held = "; CE holds it" if record["ce_holds_current_secret"] and new["key_id"] else ""
        lines.append("    new client secret %s for this CE tenant (%s)%s" % (new["key_id"] or "(to be made)", new["reason"], held))
    if record.get("left_alone"):
        lines.append("    rotation: left alone: %s" % record["left_alone"])
    if record.get("retired_key_ids"):
        lines.append("    retired secret(s) %s" % ", ".join(record["retired_key_ids"]))
    if record.get("adopted"):
        lines.append("    adopted CE's app made by hand (app id %s)" % record["app_id"])
    if record.get("repaired_object_id"):
        lines.append("    repaired Exchange's service principal, registered with object id %s; FullAccess granted again"
                     % record["repaired_object_id"])
    if record.get("revocation"):
        lines.extend(revocation_lines(record["revocation"]))
    if record["status"] == "not converged":
        lines.append("    CE's settings do not hold a current secret of CE's app yet (a plan: the converge gives them one)")
    elif record["status"] == "done":
        lines.append("    the CE part did not run, so whether CE can log in is not known (\"ok\" is said only of what CE holds)")
    return lines + failure_lines(record)


def failure_lines(record):
    return ["    %s: %s" % (item.get("part"), one_line(item.get("message"))) for item in record["failures"]]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(text):
    """A message as one printable line: control characters and NUL bytes never reach the summary."""
    return _CONTROL.sub(" ", str(text or "")).replace("\n", " ").strip()


def known_apps(views):
    """Views with the app their unit's lead found, also for a CE tenant that failed before its app's part reached it (the
    summary shows what is known): its unit's app id and service principal, never a secret or a result of its own."""
    found = {}
    for view in views:
        app = view.get("app") or {}
        if app.get("app_id"):
            found.setdefault(app_unit_key(view), {"app_id": app["app_id"], "service_principal_id": app.get("service_principal_id")})
    return [v if (v.get("app") or {}).get("app_id") or app_unit_key(v) not in found else dict(v, app=found[app_unit_key(v)])
            for v in views]


def summary(views, proof_skipped=False, now=None):
    """The run's summary: a record and lines per CE tenant, the counts, and why each failed CE tenant fails."""
    records = [summary_record(v, now, proof_skipped) for v in sorted(known_apps(views), key=lambda v: v["host"])]
    lines = []
    for record in records:
        lines.extend(summary_line(record))
    counts = {"tenants": len(records), "ok": sum(1 for r in records if r["status"] == "ok"),
              "failed": sum(1 for r in records if r["status"] == "FAILED")}
    failed_hosts = dict((r["host"], "%s failed for %s (see the summary above)" % (
        ", ".join(sorted(set(f.get("part") for f in r["failures"]))), r["host"])) for r in records if r["status"] == "FAILED")
    return {"records": records, "lines": lines, "counts": counts, "failed_hosts": failed_hosts}


# -- the report files ----------------------------------------------------------------------------------------------------
def _cell(value):
    return one_line(value).replace("|", "\\|") or "-"


def report_markdown(report):
    """The summary for people: a table of the CE tenants, then what else each one got and why any failed."""
    counts = report["counts"]
    kind = "A plan (--check): nothing was written" if report["check_mode"] else "A run"
    lines = ["# ceops.exchange_oauth summary, %s" % report["generated_at"], "",
             "%s. CE tenants: %d, ok: %d, failed: %d." % (kind, counts["tenants"], counts["ok"], counts["failed"]), "",
             "| CE tenant | status | directory | app | FullAccess | CE email connection | logins |",
             "|---|---|---|---|---|---|---|"]
    for record in report["records"]:
        access = record.get("full_access")
        logins = record.get("logins") or {}
        if logins.get("checked"):
            proof = "%d/%d ok" % (logins["ok"], logins["of"])
        else:
            proof = "not checked (skipped)" if logins.get("skipped") else "not checked: %s" % logins["reason"] if logins else "-"
        lines.append("| %s |" % " | ".join(_cell(v) for v in (
            record["host"], "todo" if record["status"] == "not converged" else record["status"], record.get("directory"), record.get("app_id"),
            "%d/%d" % (access["granted"], access["wanted"]) if access else "-", record.get("email_connection"), proof)))
    for record in report["records"]:
        details = summary_line(record)[1:]
        if details:
            lines.extend(["", "## %s (%s)" % (record["host"], "todo" if record["status"] == "not converged" else record["status"]), ""])
            lines.extend("- %s" % line.strip() for line in details)
    return "\n".join(lines) + "\n"


def report_files(summary_result, check_mode, report_dir, now=None):
    """The summary as files for ceops_report_dir: JSON (for machines) and Markdown (for people), named after the moment of the
    run (UTC), both from the summary's records, which hold no secret. -> [{"name", "content"}], none when no report_dir is set
    (ceops_report_dir empty or undefined)."""
    if not report_dir:
        return []
    now = now or utcnow()
    report = {"generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "check_mode": bool(check_mode),
              "counts": summary_result["counts"], "records": summary_result["records"]}
    stem = "ceops-summary-%s%s" % (now.strftime("%Y%m%dT%H%M%SZ"), "-check" if check_mode else "")
    return [{"name": stem + ".json", "content": json.dumps(report, indent=2, sort_keys=True) + "\n"},
            {"name": stem + ".md", "content": report_markdown(report)}]
