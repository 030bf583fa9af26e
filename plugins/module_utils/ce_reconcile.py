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
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_module import StepError, TaskError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import CLOUDS, is_guid, validate_tenant

# What the runbook configures for Exchange Online.
EXCHANGE_ONLINE_INBOUND = {"protocol": "imap", "host": "outlook.office365.com", "port": 993, "security": "ssl"}
EXCHANGE_ONLINE_OUTBOUND = {"host": "smtp.office365.com", "port": 587, "security": "starttls"}
TOKEN_PATH = "oauth2/v2.0/token"


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


# -- the shared compare-and-act frame -------------------------------------------------------------
class Reconciler:
    kind = "object"

    def __init__(self, portal, params, check_mode=False, warn=None):
        self.portal = portal
        self.params = params
        self.check_mode = check_mode
        self.warn = warn or (lambda message: None)
        self.actions = []
        self.changed = False
        self.result = {}
        self.label = self.make_label()

    def make_label(self):
        parts = ["CE deployment %s" % self.params["ce_url"]]
        if self.params.get("ce_tenant"):
            parts.append("tenant %s" % self.params["ce_tenant"])
        parts.append("%s %r" % (self.kind, self.params["name"]) if self.params.get("name") else self.kind)
        return ", ".join(parts)

    def partial(self):
        return dict(self.result, changed=self.changed, actions=list(self.actions))

    def step(self, doing, call):
        """Run one Portal call; a failure names the object, the step, and what had already been done."""
        try:
            return call()
        except ServiceError as error:
            raise StepError("%s: %s" % (self.label, doing), error, self.partial())

    def act(self, description, call):
        """A write: recorded always, sent only outside check mode."""
        self.actions.append(description)
        self.changed = True
        if self.check_mode:
            return None
        return self.step(description, call)

    def fail(self, message):
        raise TaskError("%s: %s" % (self.label, message), self.partial())

    def portal_info(self):
        info = self.step("reading the Portal's version", self.portal.info)
        self.result["ce_version"] = info["version"]
        return info

    def finish(self, before, after):
        result = self.partial()
        result["diff"] = {"before": before, "after": after}
        return result

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
class GatewayReconciler(Reconciler):
    kind = "email gateway"

    def prepare(self):
        self.portal_info()
        if self.params["state"] == "present":
            problems = ce_portal.gateway_problems(self.desired(None))
            if problems:
                self.fail("; ".join(problems))
            if not ce_portal.protocol_supports_oauth(self.params["inbound"]["protocol"]):
                self.warn("%s downloads mail with %s: CE does not support OAuth on POP3, so email connections on this gateway "
                          "cannot use OAuth to receive (Exchange Online has switched off basic authentication)"
                          % (self.label, self.params["inbound"]["protocol"].upper()))

    def read(self):
        return self.portal.find_gateway(self.params["name"])

    def desired(self, current):
        p = self.params
        description = p["description"] if p["description"] is not None else (current or {}).get("description")
        return {"name": p["name"], "description": description, "inbound": dict(p["inbound"]), "outbound": dict(p["outbound"])}

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
        if not is_guid(p["client_id"] or ""):
            self.fail("client_id %r is not a GUID: use the Application (client) ID of CE's app registration" % (p["client_id"],))
        self.wanted = {"name": p["name"], "client_id": p["client_id"],
                       "scopes": list(p["scopes"] or default_scopes(p["cloud"])),
                       "token_endpoint_url": p["token_endpoint_url"] or token_endpoint_url(p["tenant_id"], p["cloud"], p["authority_host"])}
        problems = ce_portal.oauth_settings_problems(self.wanted)
        if problems:
            self.fail("; ".join(problems))
        problem = ce_portal.oauth_problem(self.portal_info())
        if problem:
            self.fail(problem)

    def read(self):
        return self.portal.find_oauth_settings(self.params["ce_tenant"], self.params["name"])

    def describe(self, record):
        if record is None:
            return {"state": "absent"}
        return {"state": "present", "name": record["name"], "client_id": record["client_id"], "scopes": list(record["scopes"]),
                "token_endpoint_url": record["token_endpoint_url"], "client_secret_set": record["client_secret_set"]}

    def ensure_present(self, current):
        p, tenant, desired = self.params, self.params["ce_tenant"], dict(self.wanted)
        secret = p["client_secret"]
        if current is None:
            if not secret:
                # Structured, so a playbook can tell "needs a secret" from every other failure (roles/ce_email_oauth recovers it).
                self.result["client_secret_required"] = True
                self.fail("client_secret is required to create them (the Portal never returns a stored secret); pass the "
                          "secret's value, for example from the run that created it or from Ansible Vault")
            send_secret = True
            what = "client id %s, token endpoint %s" % (desired["client_id"], desired["token_endpoint_url"])
            record = self.act("create %s %r: %s" % (self.kind, p["name"], what),
                              lambda: self.portal.create_oauth_settings(tenant, desired, secret))
            record = record or dict(desired, id=None, revision=None, client_secret_updated_at=None)
        else:
            # The Portal cannot say whether the stored secret equals ours: sending it is a change by itself.
            send_secret = bool(secret) and (p["update_secret"] == "always" or not current["client_secret_set"])
            changes = differences(current, desired) + (["client secret replaced"] if send_secret else [])
            record = current
            if changes:
                record = self.act("update %s %r: %s" % (self.kind, p["name"], "; ".join(changes)),
                                  lambda: self.portal.update_oauth_settings(tenant, current, desired, secret if send_secret else None))
                record = record or dict(current, **desired)
        if send_secret:
            record = dict(record, client_secret_set=True)
        self.result["oauth_settings"] = record
        self.result["client_secret_updated"] = send_secret
        after = self.describe(record)
        if send_secret and current is not None:
            after["client_secret_replaced"] = True
        return after

    def ensure_absent(self, current):
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
        self.gateway = self.step("looking up email gateway %r" % p["gateway"], lambda: self.portal.find_gateway(p["gateway"]))
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
        return self.portal.find_connection(self.params["ce_tenant"], self.params["name"])

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
        desired = {"name": p["name"], "gateway_id": self.gateway["id"], "oauth_settings_id": settings_id,
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
