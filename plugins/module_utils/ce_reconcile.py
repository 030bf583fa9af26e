# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compare-and-act logic of the ce_* modules: the runbook's CE part as classes a unit test can drive.

Each reconciler reads the object, compares it with the task's options, and writes at most once
(nothing in check mode). A write refused because the object changed in the Portal meanwhile
(stale revision) is not repeated blindly: the object is read again, compared again, and written
at most once more.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.ceops.exchange_oauth.plugins.module_utils import ce_portal
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.reconcile import Reconciler as BaseReconciler, StepError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import CLOUDS, is_guid, validate_tenant
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.timestamps import parse_time

# What the runbook configures for Exchange Online.
EXCHANGE_ONLINE_INBOUND = {"protocol": "imap", "host": "outlook.office365.com", "port": 993, "security": "ssl"}
EXCHANGE_ONLINE_OUTBOUND = {"host": "smtp.office365.com", "port": 587, "security": "starttls"}
TOKEN_PATH = "oauth2/v2.0/token"
# Stands for CE's app in checks of a plan made before the app exists; never sent.
PLACEHOLDER_APP_ID = "00000000-0000-0000-0000-000000000000"


# -- pure helpers ---------------------------------------------------------------------------------
def token_endpoint_url(tenant_id, cloud="public", authority_host=None):
    """The v2.0 token endpoint of a directory in a Microsoft cloud (or behind an authority override)."""
    host = authority_host or CLOUDS[cloud]["authority_host"]
    if "://" not in host:
        host = "https://" + host
    return "%s/%s/%s" % (host.rstrip("/"), tenant_id, TOKEN_PATH)


def default_scopes(cloud="public"):
    """App-only access to Exchange Online of that cloud (IMAP, POP and SMTP alike)."""
    return [CLOUDS[cloud]["exchange"] + "/.default"]


def _show(value):
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "(none)" if value is None or value == "" else str(value)


def differences(current, desired, prefix=""):
    """``["inbound.port 995 -> 993", ...]`` for the keys of ``desired`` that ``current`` does not match."""
    found = []
    for key in sorted(desired):
        want, have, name = desired[key], (current or {}).get(key), prefix + key
        if isinstance(want, dict):
            found.extend(differences(have or {}, want, name + "."))
        elif isinstance(want, list) and isinstance(have, list):
            if sorted(want) != sorted(have):  # scope order means nothing to the token endpoint
                found.append("%s %s -> %s" % (name, _show(have), _show(want)))
        elif want != have:
            found.append("%s %s -> %s" % (name, _show(have), _show(want)))
    return found


def describe_endpoint(endpoint):
    protocol = endpoint.get("protocol")
    return "%s%s:%s (%s)" % (protocol.upper() + " " if protocol else "", endpoint.get("host"), endpoint.get("port"), endpoint.get("security"))


def secret_held(current, client_id, secret_start):
    """(True, None) when CE's OAuth settings provably hold the app's current secret for this CE tenant, else (False, why).

    The Portal never shows a stored secret, so this is told from what it shows: the settings name the app, hold a secret,
    and got it at or after the moment the app's current secret for this CE tenant was made (``secret_start``, Graph's
    startDateTime of the newest secret of its name). A secret typed in by hand, or by another tool, before that moment
    is not ours; so is one of another app.
    """
    if current is None:
        return False, "CE has no such OAuth settings yet"
    if not current.get("client_secret_set"):
        return False, "CE's settings hold no client secret"
    if str(current.get("client_id") or "").lower() != str(client_id or "").lower():
        return False, "CE's settings name app %s, not CE's app %s, so the secret they hold is not one of CE's app" % (current.get("client_id"), client_id)
    start = parse_time(secret_start)
    if start is None:
        return False, "CE's app has no current client secret for this CE tenant"
    updated = parse_time(current.get("client_secret_updated_at"))
    if updated is None:
        return False, "the Portal does not say when CE's secret was set"
    if updated < start:
        return False, ("CE's secret was set on %s, before CE's app made its current secret for this CE tenant (%s): it is another "
                       "one (typed in by hand, set by another tool, or an older one)" % (current.get("client_secret_updated_at"), secret_start))
    return True, None


def find_one(records, what, fix):
    """The one record of a list, None for none; several stop the task with each one's name and id and the option that picks."""
    if len(records) > 1:
        raise ValueError("%d %s: %s; %s" % (len(records), what, ", ".join("%r (id %s)" % (r.get("name"), r.get("id")) for r in records), fix))
    return records[0] if records else None


# -- the shared compare-and-act frame -------------------------------------------------------------
class Reconciler(BaseReconciler):
    kind = "object"

    def __init__(self, portal, params, check_mode=False, warn=None):
        super(Reconciler, self).__init__(params, check_mode)
        self.portal = portal
        self.warn = warn or self.warnings.append
        self.label = self.make_label()

    def make_label(self):
        parts = ["CE deployment %s" % self.params["ce_url"]]
        if self.params.get("ce_tenant"):
            parts.append("tenant %s" % self.params["ce_tenant"])
        parts.append("%s %r" % (self.kind, self.params["name"]) if self.params.get("name") else self.kind)
        return ", ".join(parts)

    def fail(self, message):
        self.refuse(message)

    def portal_info(self):
        info = self.step("reading the Portal's version", self.portal.info)
        self.result["ce_version"] = info["version"]
        self.result["ce_capabilities"] = list(info.get("capabilities") or [])
        return info

    # Subclasses: prepare() (checks before any read of the object), read(), describe(record),
    # ensure_present(current) -> after, ensure_absent(current) -> after.
    def prepare(self):
        pass

    def run(self):
        self.prepare()
        for attempt in (1, 2):
            current = self.step("looking it up", self.read)
            before = self.describe(current)
            mark = (len(self.actions), self.changed)
            try:
                if self.params["state"] == "absent":
                    after = self.ensure_absent(current)
                else:
                    after = self.ensure_present(current)
            except StepError as error:
                retry = ce_portal.is_stale_revision(error.cause) or ce_portal.is_name_conflict(error.cause)
                if attempt == 2 or not retry:
                    raise
                # The Portal changed nothing. Someone edited (or created) the object meanwhile:
                # compare with what is there now instead of overwriting it blindly.
                del self.actions[mark[0]:]
                self.changed = mark[1]
                self.warn("%s changed in the Portal while this task ran (%s); read it again and compared again"
                          % (self.label, error.cause.code or "HTTP %s" % error.cause.status))
                continue
            return self.finish(before, after)

    def write(self, current, desired, create, update, what, explain=None):
        """Create or update to ``desired``; return the record as it is now (as it would be in check mode).

        ``explain(changes)`` may reword the changed fields for a person (names instead of ids).
        """
        if current is None:
            created = self.act("create %s %r: %s" % (self.kind, desired["name"], what), create)
            return created or dict(desired, id=None, revision=None)
        changes = differences(current, desired)
        if not changes:
            return current
        if explain:
            changes = explain(changes)
        updated = self.act("update %s %r: %s" % (self.kind, desired["name"], "; ".join(changes)), update)
        return updated or dict(current, **desired)

    def delete(self, current, call):
        if current is not None:
            self.act("delete %s %r" % (self.kind, current["name"]), call)
        return {"state": "absent"}


# -- ce_email_gateway -----------------------------------------------------------------------------
def find_exchange_gateway(portal, name, inbound_host):
    """(gateway, adopted): the deployment's gateway named ``name``; else the one gateway whose inbound host is Exchange
    Online's (``inbound_host``), which the runbook's deployment administrator made by hand under a name of their own and
    this collection adopts; (None, False) when there is neither. Several such gateways raise ValueError with each one."""
    gateway = portal.find_gateway(name)
    if gateway is not None:
        return gateway, False
    host = (inbound_host or "").strip().lower()
    candidates = [g for g in portal.gateways() if host and (g["inbound"].get("host") or "").strip().lower() == host]
    adopted = find_one(candidates, "email gateways read mail from %s and none is named %r" % (inbound_host, name),
                       "name the one to use in ce_email_oauth_gateway_name (the gateway option)")
    return adopted, adopted is not None


class GatewayReconciler(Reconciler):
    kind = "email gateway"

    def prepare(self):
        info = self.portal_info()
        if self.params["state"] == "present":
            problems = ce_portal.gateway_problems(self.desired(None))
            if problems:
                self.fail("; ".join(problems))
            if not ce_portal.protocol_supports_oauth(self.params["inbound"]["protocol"]):
                self.warn("%s downloads mail with %s: CE does not support OAuth on POP3, so email connections on this gateway "
                          "cannot use OAuth to receive (Exchange Online has switched off basic authentication)"
                          % (self.label, self.params["inbound"]["protocol"].upper()))
            if self.params.get("require_oauth"):
                problem = ce_portal.oauth_problem(info)
                if problem:
                    self.fail(problem)

    def read(self):
        if self.params["state"] == "absent":
            return self.portal.find_gateway(self.params["name"])
        try:
            gateway, adopted = find_exchange_gateway(self.portal, self.params["name"], self.params["inbound"]["host"])
        except ValueError as error:
            self.fail(str(error))
        self.result["adopted"] = adopted
        return gateway

    def desired(self, current):
        p = self.params
        description = p["description"] if p["description"] is not None else (current or {}).get("description")
        # An adopted gateway keeps the name its administrator gave it: the tenants' connections find it by what it does.
        name = current["name"] if current and self.result.get("adopted") else p["name"]
        return {"name": name, "description": description, "inbound": dict(p["inbound"]), "outbound": dict(p["outbound"])}

    def describe(self, record):
        if record is None:
            return {"state": "absent"}
        return {"state": "present", "name": record["name"], "description": record.get("description"),
                "inbound": dict(record["inbound"]), "outbound": dict(record["outbound"])}

    def ensure_present(self, current):
        desired = self.desired(current)
        record = self.write(current, desired, lambda: self.portal.create_gateway(desired),
                            lambda: self.portal.update_gateway(current, desired),
                            "inbound %s, outbound %s" % (describe_endpoint(desired["inbound"]), describe_endpoint(desired["outbound"])))
        self.result["email_gateway"] = record
        return self.describe(record)

    def ensure_absent(self, current):
        return self.delete(current, lambda: self.portal.delete_gateway(current))


# -- ce_oauth_settings ----------------------------------------------------------------------------
class OAuthSettingsReconciler(Reconciler):
    """A tenant's OAuth settings. Never a client id without its secret: settings that name another app, or hold a secret
    this task cannot vouch for, are changed only in one write that carries the new client id and a secret of it."""

    kind = "OAuth settings"

    def prepare(self):
        p = self.params
        problem = ce_portal.tenant_name_problem(p["ce_tenant"])
        if problem:
            self.fail(problem)
        if p["state"] == "absent":
            self.portal_info()
            return
        if p["tenant_id"]:
            problem = validate_tenant(p["tenant_id"])
            if problem:
                self.fail(problem)
        # A plan (check mode) may come before CE's app exists: its id is then unknown, everything else is checked.
        self.app_pending = self.check_mode and not p["client_id"]
        if not self.app_pending and not is_guid(p["client_id"] or ""):
            self.fail("client_id %r is not a GUID: use the Application (client) ID of CE's app registration" % (p["client_id"],))
        self.wanted = {"name": p["name"], "client_id": p["client_id"] or None,
                       "scopes": list(p["scopes"] or default_scopes(p["cloud"])),
                       "token_endpoint_url": p["token_endpoint_url"] or token_endpoint_url(p["tenant_id"], p["cloud"], p["authority_host"])}
        problems = ce_portal.oauth_settings_problems(dict(self.wanted, client_id=self.wanted["client_id"] or PLACEHOLDER_APP_ID))
        if problems:
            self.fail("; ".join(problems))
        problem = ce_portal.oauth_problem(self.portal_info())
        if problem:
            self.fail(problem)

    def read(self):
        p = self.params
        settings = self.portal.find_oauth_settings(p["ce_tenant"], p["name"])
        if settings is not None or p["state"] == "absent" or not p.get("gateway"):
            return settings
        # The runbook's CE tenant administrator made OAuth settings under a name of their own and selected them in the
        # tenant's email connection on the Exchange Online gateway: those settings are CE's and are adopted (switched to
        # CE's app only together with a secret of it). Settings no such connection uses are left as they are.
        self.result["adopted"] = False
        try:
            gateway = find_exchange_gateway(self.portal, p["gateway"], p.get("gateway_inbound_host") or EXCHANGE_ONLINE_INBOUND["host"])[0]
        except ValueError as error:
            self.fail(str(error))
        connections = self.portal.connections(p["ce_tenant"], gateway["id"]) if gateway else []
        used = sorted(set(c["oauth_settings_id"] for c in connections if c.get("oauth_settings_id")))
        if not used:
            return None
        if len(used) > 1:
            self.fail("no OAuth settings are named %r, and the tenant's email connections on gateway %r use %d different ones (%s): "
                      "name the ones CE should use in ce_email_oauth_settings_name (the name option)" % (
                          p["name"], gateway["name"], len(used), ", ".join("%r uses %s" % (c["name"], c["oauth_settings_id"])
                                                                           for c in connections if c.get("oauth_settings_id"))))
        settings = self.portal.get_oauth_settings(p["ce_tenant"], used[0])
        self.result["adopted"] = True
        self.warn("%s: none are named %r; using %r, which the tenant's email connection on gateway %r uses (made by hand)"
                  % (self.label, p["name"], settings["name"], gateway["name"]))
        return settings

    def describe(self, record):
        if record is None:
            return {"state": "absent"}
        return {"state": "present", "name": record["name"], "client_id": record["client_id"] or "(CE's app, to be created)",
                "scopes": list(record["scopes"]), "token_endpoint_url": record["token_endpoint_url"],
                "client_secret_set": record["client_secret_set"]}

    def secret_to_send(self, current):
        """(send the secret?, why CE needs one) by update_secret."""
        p = self.params
        if p["update_secret"] == "when_not_held":
            if self.app_pending:
                return True, "CE's app does not exist yet"
            held, why = secret_held(current, self.wanted["client_id"], p["client_secret_start"])
            self.result["client_secret_held"] = held
            if held and p["client_secret"]:
                # The secret given was made before CE got the one it holds, and not by this task: another run gave CE its
                # own (or an operator did). The one given is not CE's.
                self.result["client_secret_superseded"] = True
            return not held, why
        if current is None:
            return True, "the settings are to be created"
        if p["update_secret"] == "always":
            return True, None
        return not current["client_secret_set"], "CE's settings hold no client secret"

    def ensure_present(self, current):
        p, tenant, desired = self.params, self.params["ce_tenant"], dict(self.wanted)
        if current is not None and self.result.get("adopted"):
            desired["name"] = current["name"]  # adopted settings keep the name their administrator gave them
        secret = p["client_secret"]
        send_secret, why = self.secret_to_send(current)
        if current is not None and not send_secret and not self.app_pending and \
                str(current.get("client_id") or "").lower() != str(desired["client_id"] or "").lower():
            # Whatever update_secret says: the secret CE holds is one of the app the settings name now, so a new client id
            # goes only together with a secret of it (never a client id without its secret).
            send_secret, why = True, ("CE's settings name app %s, not CE's app %s, so the secret they hold is not one of CE's app"
                                      % (current.get("client_id"), desired["client_id"]))
        if send_secret and not secret:
            return self.need_secret(current, desired, why)
        send_secret = send_secret and bool(secret)
        if current is None:
            what = "client id %s, token endpoint %s, with a client secret" % (desired["client_id"], desired["token_endpoint_url"])
            record = self.act("create %s %r: %s" % (self.kind, desired["name"], what),
                              lambda: self.portal.create_oauth_settings(tenant, desired, secret))
            record = record or dict(desired, id=None, revision=None, client_secret_updated_at=None)
        else:
            # The Portal cannot say whether the stored secret equals ours: sending it is a change by itself.
            replaced = "client secret replaced" + (" (%s)" % why if why and p["update_secret"] == "when_not_held" else "")
            changes = differences(current, desired) + ([replaced] if send_secret else [])
            record = current
            if changes:
                record = self.act("update %s %r: %s" % (self.kind, desired["name"], "; ".join(changes)),
                                  lambda: self.portal.update_oauth_settings(tenant, current, desired, secret if send_secret else None))
                record = record or dict(current, **desired)
        if send_secret:
            record = dict(record, client_secret_set=True)
            self.result["client_secret_held"] = True
        self.result["oauth_settings"] = record
        self.result["client_secret_updated"] = send_secret
        after = self.describe(record)
        if send_secret and current is not None:
            after["client_secret_replaced"] = True
        return after

    def need_secret(self, current, desired, why):
        """CE needs a secret this task was not given: write nothing (a new client id without its secret would leave CE with
        another app's secret), say so; a plan shows the write the converge makes once the Azure AD part made the secret."""
        p = self.params
        self.result.update(client_secret_needed=True, client_secret_needed_reason=why, oauth_settings=current)
        if p["update_secret"] != "when_not_held" and current is None:
            # Structured, so a playbook can tell "needs a secret" from every other failure.
            self.result["client_secret_required"] = True
            self.fail("client_secret is required to create them (the Portal never returns a stored secret); pass the "
                      "secret's value, for example from the run that created it or from Ansible Vault")
        if p["update_secret"] != "when_not_held" and not self.check_mode:
            self.fail("%s: client_id %s goes only together with a secret of that app, and client_secret was not given; nothing "
                      "was written. Pass a client secret of app %s" % (why, desired["client_id"], desired["client_id"]))
        if self.check_mode:
            changes = (["create with client id %s, token endpoint %s" % (desired["client_id"] or "of CE's app (to be created)",
                                                                         desired["token_endpoint_url"])] if current is None
                       else differences(current, desired))
            self.act("%s %s %r: %s, with a new client secret of CE's app (%s)" % (
                "create" if current is None else "update", self.kind, desired["name"], "; ".join(changes) or "same settings", why), lambda: None)
            return dict(self.describe(dict(current or {}, **dict(desired, client_secret_set=True))), client_secret_replaced=current is not None)
        return self.describe(current)

    def ensure_absent(self, current):
        owner = self.params.get("client_id")
        if current is not None and owner is not None and str(current.get("client_id") or "").lower() != owner.strip().lower():
            # Removing settings is for settings that are CE's (offboard.yml): those of another app are another tool's or admin's.
            ours = owner.strip() or "(not known in the directory)"
            self.fail("%s name app %s, not CE's app %s: they are not CE's and were not removed; nothing was written. Remove them in "
                      "the CE Portal if they should go" % (self.label, current.get("client_id"), ours))
        return self.delete(current, lambda: self.portal.delete_oauth_settings(self.params["ce_tenant"], current))


# -- ce_email_connection --------------------------------------------------------------------------
class ConnectionReconciler(Reconciler):
    kind = "email connection"

    def prepare(self):
        p = self.params
        problem = ce_portal.tenant_name_problem(p["ce_tenant"])
        if problem:
            self.fail(problem)
        self.gateway = self.settings = None
        if p["state"] == "absent":
            self.portal_info()
            return
        uses_oauth = p["use_oauth_receive"] or p["use_oauth_send"]
        if uses_oauth and not p["oauth_settings"]:
            self.fail("oauth_settings is required when use_oauth_receive or use_oauth_send is true: name the tenant's OAuth settings "
                      "(made with ce_oauth_settings)")
        info = self.portal_info()
        if uses_oauth:
            problem = ce_portal.oauth_send_problem(info) if p["use_oauth_send"] else ce_portal.oauth_problem(info)
            if problem:
                self.fail(problem)
        try:
            self.gateway, adopted = self.step("looking up email gateway %r" % p["gateway"], lambda: find_exchange_gateway(
                self.portal, p["gateway"], p.get("gateway_inbound_host") or EXCHANGE_ONLINE_INBOUND["host"]))
        except ValueError as error:
            self.fail(str(error))
        if adopted:
            self.warn("%s: no email gateway is named %r; using %r, the deployment's gateway for %s (made by hand)"
                      % (self.label, p["gateway"], self.gateway["name"], self.gateway["inbound"].get("host")))
        if self.gateway is None:
            self.missing("email gateway", p["gateway"], "create it with ce_email_gateway (a deployment administrator's task) "
                         "or correct gateway")
            self.gateway = {"id": None, "name": p["gateway"], "inbound": {}}
        protocol = self.gateway["inbound"].get("protocol")
        if p["use_oauth_receive"] and protocol and not ce_portal.protocol_supports_oauth(protocol):
            self.fail("email gateway %r downloads mail with %s, and CE does not support OAuth for POP3: switch the gateway to IMAP "
                      "(ce_email_gateway inbound.protocol=imap, outlook.office365.com:993), use another gateway, or set "
                      "use_oauth_receive=false" % (p["gateway"], protocol.upper()))
        if p["oauth_settings"]:
            self.settings = self.step("looking up OAuth settings %r" % p["oauth_settings"],
                                      lambda: self.portal.find_oauth_settings(p["ce_tenant"], p["oauth_settings"]))
            if self.settings is None:
                self.missing("OAuth settings", p["oauth_settings"], "create them with ce_oauth_settings first, or correct oauth_settings")
                self.settings = {"id": None, "name": p["oauth_settings"]}

    def missing(self, kind, name, fix):
        message = "found no %s named %r %s" % (kind, name, "on this deployment" if kind == "email gateway" else "in this tenant")
        if not self.check_mode:
            self.fail("%s: %s" % (message, fix))
        # In check mode an earlier task of the same run would have created it.
        self.warn("%s: %s; check mode assumes an earlier task of this run creates it" % (self.label, message))

    def read(self):
        p = self.params
        connection = self.portal.find_connection(p["ce_tenant"], p["name"])
        if connection is not None or p["state"] == "absent" or not (self.gateway or {}).get("id"):
            return connection
        # The runbook: "select the email connection associated with the Exchange Online email gateway ... If no such email
        # connection exists yet then create": the one connection of the tenant on that gateway, whatever its name, is adopted.
        try:
            adopted = find_one(self.portal.connections(p["ce_tenant"], self.gateway["id"]),
                               "email connections of tenant %s use gateway %r and none is named %r" % (p["ce_tenant"], self.gateway["name"], p["name"]),
                               "name the one to use in ce_email_oauth_connection_name (the name option)")
        except ValueError as error:
            self.fail(str(error))
        self.result["adopted"] = adopted is not None
        return adopted

    def name_of(self, kind, object_id):
        """A referenced object's name for the diff (a person does not know ids)."""
        known = self.gateway if kind == "gateway" else self.settings
        if not object_id:
            return None
        if known and known.get("id") == object_id:
            return known["name"]
        get = self.portal.get_gateway if kind == "gateway" else (lambda i: self.portal.get_oauth_settings(self.params["ce_tenant"], i))
        try:
            return get(object_id)["name"]
        except ServiceError:
            return "id %s" % object_id

    def describe(self, record):
        if record is None:
            return {"state": "absent"}
        return {"state": "present", "name": record["name"], "gateway": self.name_of("gateway", record["gateway_id"]),
                "oauth_settings": self.name_of("settings", record["oauth_settings_id"]),
                "use_oauth_receive": record["use_oauth_receive"], "use_oauth_send": record["use_oauth_send"]}

    def ensure_present(self, current):
        p, tenant = self.params, self.params["ce_tenant"]
        if p["oauth_settings"] is not None:
            settings_id = self.settings["id"] if p["oauth_settings"] else None  # "" detaches them
        else:
            settings_id = (current or {}).get("oauth_settings_id")
        # An adopted connection keeps the name its administrator gave it.
        name = current["name"] if current and self.result.get("adopted") else p["name"]
        desired = {"name": name, "gateway_id": self.gateway["id"], "oauth_settings_id": settings_id,
                   "use_oauth_receive": p["use_oauth_receive"], "use_oauth_send": p["use_oauth_send"]}
        what = "gateway %r, OAuth settings %r, OAuth to receive %s, to send %s" % (
            p["gateway"], p["oauth_settings"] or None, p["use_oauth_receive"], p["use_oauth_send"])
        record = self.write(current, desired, lambda: self.portal.create_connection(tenant, desired),
                            lambda: self.portal.update_connection(tenant, current, desired), what,
                            explain=lambda changes: differences(self.describe(current), self.describe(desired)) or changes)
        self.result["email_connection"] = record
        if record.get("id"):
            self.result["mailboxes"] = self.step("listing its mailboxes", lambda: self.portal.connection_mailboxes(tenant, record["id"]))
        return self.describe(record)

    def ensure_absent(self, current):
        return self.delete(current, lambda: self.portal.delete_connection(self.params["ce_tenant"], current))


# -- ce_batch_update ------------------------------------------------------------------------------
class BatchUpdateReconciler(Reconciler):
    kind = "batch update"
    # Starting again after a concurrent start is bounded: each round waits for someone else's update.
    MAX_ROUNDS = 3

    def run(self):
        p = self.params
        self.portal_info()
        deadline = self.portal.clock() + p["wait_timeout"]
        pending, changes = self.step("reading the pending configuration", self.portal.pending_changes)
        active = self.step("looking for a running batch update", self.portal.active_update)
        self.result.update(pending_changes=changes, coalesced_with=[])
        # Deployment-wide changes (gateways) belong to no tenant.
        before = {"pending": pending, "pending_changes": ["%s %s %s" % (c["tenant"] or "deployment", c["kind"], c["id"]) for c in changes],
                  "running_update": (active or {}).get("id")}
        force = p["force"]
        if self.check_mode:
            if pending or force:
                after_running = " after batch update %s finishes" % active["id"] if active else ""
                self.changed = True
                self.actions.append("start a batch update%s %s" % (after_running, self.reason(changes)))
            self.result["pending"] = pending
            return self.finish(before, {"pending": False if (pending or force) else pending, "pending_changes": [] if pending or force else
                                        before["pending_changes"], "running_update": None})
        if active:
            self.coalesce(active["id"], deadline)
            pending = self.step("reading the pending configuration", self.portal.pending_changes)[0]
        for dummy in range(self.MAX_ROUNDS):
            if not (pending or force):
                break
            started, running_id = self.step("starting a batch update", self.portal.start_update)
            if started is None:  # someone started one between our read and our start
                self.coalesce(running_id, deadline)
                pending = self.step("reading the pending configuration", self.portal.pending_changes)[0]
                continue
            self.changed = True
            self.actions.append("started batch update %s %s" % (started["id"], self.reason(changes)))
            self.finish_update(self.wait(started["id"], deadline))
            pending = force = False
        if pending:
            self.warn("%s: configuration is still pending after %d batch updates started elsewhere; run the task again"
                      % (self.label, len(self.result["coalesced_with"])))
        self.result["pending"] = pending
        return self.finish(before, {"pending": pending, "pending_changes": [] if not pending else before["pending_changes"],
                                    "running_update": None})

    @staticmethod
    def reason(changes):
        return "for %d pending change(s)" % len(changes) if changes else "(forced; the Portal reported nothing pending)"

    def wait(self, update_id, deadline):
        update = self.step("waiting for batch update %s" % update_id,
                           lambda: self.portal.wait_for_update(update_id, deadline, self.params["poll_interval"]))
        if ce_portal.update_is_active(update):
            self.result["batch_update"] = update
            self.fail("batch update %s is still %s after %s seconds: it goes on in the Portal; run this task again to wait for it "
                      "(it starts no second update while one runs), or raise wait_timeout"
                      % (update_id, update["status"], self.params["wait_timeout"]))
        return update

    def coalesce(self, update_id, deadline):
        """Wait for an update someone else started; its outcome is theirs, pending changes decide what we do next."""
        update = self.wait(update_id, deadline)
        self.result["coalesced_with"].append(update_id)
        self.actions.append("waited for batch update %s, started elsewhere, to finish (%s)" % (update_id, update["status"]))

    def finish_update(self, update):
        self.result["batch_update"] = update
        if not ce_portal.update_succeeded(update):
            errors = "; ".join(update["errors"]) or "the Portal gave no reason"
            self.fail("batch update %s %s: %s. The configuration stays pending: fix what the errors name and run again"
                      % (update["id"], update["status"], errors))
