# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compare-and-act logic of azuread_app: the runbook's Azure AD part as functions a unit test can call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import json

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.graph import EXCHANGE_APP_ID
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import AlreadyDone, RecordsWrites, StepError

EXCHANGE_ROLE_NAMES = ("IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")


# -- pure helpers ---------------------------------------------------------------------------------
def parse_time(value):
    """Graph's RFC 3339 timestamps, which may carry 7 fractional digits."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        frac = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(frac):]
        text = "%s.%s%s" % (head, frac[:6].ljust(6, "0"), tz)
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exchange_role_ids(resource_sp, names):
    """Map permission names to the Exchange resource's app role ids, resolved at run time."""
    by_value = dict((role.get("value"), role.get("id")) for role in resource_sp.get("appRoles", []))
    missing = [name for name in names if name not in by_value]
    if missing:
        raise ValueError("Office 365 Exchange Online in this directory offers no application permission %s (it offers %s)"
                         % (", ".join(missing), ", ".join(sorted(v for v in by_value if v))))
    return dict((name, by_value[name]) for name in names)


def desired_required_resource_access(current, role_ids):
    """requiredResourceAccess with the Exchange entry's application roles set to ``role_ids``.

    Delegated scopes on Exchange and entries for other APIs are kept as they are.
    """
    result = []
    exchange_entry = None
    for entry in current or []:
        if entry.get("resourceAppId") == EXCHANGE_APP_ID:
            exchange_entry = entry
        else:
            result.append(entry)
    scopes = [a for a in (exchange_entry or {}).get("resourceAccess", []) if a.get("type") != "Role"]
    access = scopes + [{"id": role_id, "type": "Role"} for role_id in sorted(role_ids)]
    if access:
        result.append({"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": access})
    return result


def requested_role_ids(required_resource_access):
    for entry in required_resource_access or []:
        if entry.get("resourceAppId") == EXCHANGE_APP_ID:
            return set(a.get("id") for a in entry.get("resourceAccess", []) if a.get("type") == "Role")
    return set()


def secrets_named(application, name):
    """Password credentials carrying ``name``, newest first: latest expiry, then latest start.

    The start breaks ties: two secrets made with the same lifetime in the same second (a rotation
    right after a create) must still sort the newer one first, or retire_previous would keep the old one.
    """
    never = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    creds = [c for c in application.get("passwordCredentials") or [] if c.get("displayName") == name]
    return sorted(creds, key=lambda c: (parse_time(c.get("endDateTime")) or never, parse_time(c.get("startDateTime")) or never),
                  reverse=True)


def plan_secrets(creds, options, now):
    """Decide (create_new, key_ids_to_remove) for the secrets of one name.

    Expired secrets go always (they can only confuse); older valid ones only on retire_previous,
    because CE may still be using them until it has the new one. An entry naming remove_key_ids removes exactly those
    (of this name, if still there) and creates nothing.
    """
    newest = creds[0] if creds else None
    newest_end = parse_time(newest.get("endDateTime")) if newest else None
    renew_at = now + datetime.timedelta(days=options["renew_before_days"])
    create = bool(options["rotate"] or newest is None or newest_end <= renew_at)
    remove = [c["keyId"] for c in creds if parse_time(c.get("endDateTime")) <= now]
    named = [key_id.lower() for key_id in options.get("remove_key_ids") or []]
    if named:
        # Only removes: its own secret not yet listed (Graph's lag after a create) must not look like "none, make one".
        return False, remove + [c["keyId"] for c in creds if c["keyId"].lower() in named and c["keyId"] not in remove]
    if options["retire_previous"]:
        keep = None if create else newest.get("keyId")
        remove = [c["keyId"] for c in creds if c["keyId"] != keep]
    return create, remove


def secret_summary(cred):
    # The start lets a rotation tell a secret made minutes ago from one that is months old.
    return {"key_id": cred.get("keyId"), "start_date_time": cred.get("startDateTime"), "end_date_time": cred.get("endDateTime")}


def secret_options_of(params):
    """The secrets asked for, whichever option asked: app_secrets (several names) or app_secret (one)."""
    if params.get("app_secrets"):
        return list(params["app_secrets"])
    return [params["app_secret"]] if params.get("app_secret") else []


def duplicate_names(options):
    names = [o["name"] for o in options]
    return sorted(set(n for n in names if names.count(n) > 1))


def token_tenant(token):
    """The directory GUID from a token's claims (the caller may have named the directory by domain)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload.encode("ascii"))).get("tid")
    except (IndexError, ValueError, TypeError, AttributeError):
        return None


# -- the reconciler -------------------------------------------------------------------------------
class AppReconciler(RecordsWrites):
    def __init__(self, graph, auth, params, check_mode=False, now=None):
        self.graph = graph
        self.auth = auth
        self.params = params
        self.check_mode = check_mode
        self.now = now or datetime.datetime.now(datetime.timezone.utc)
        self.actions = []
        self.changed = False
        self.result = {}
        self.label = self._label()
        self.just_upserted = False

    def _label(self):
        p = self.params
        name = p.get("unique_name") or p.get("app_id") or p.get("display_name")
        return "app %r in directory %s" % (name, p["tenant_id"])

    def step(self, doing, call):
        """Run one Graph call; a failure names the object and what had already been done."""
        try:
            return call()
        except ServiceError as error:
            partial = dict(self.result, changed=self.changed, actions=self.actions)
            raise StepError("%s: %s" % (self.label, doing), error, partial)

    def run(self):
        self.result["tenant_id"] = token_tenant(self.step("getting a Graph token", self.auth.graph_token)) or self.params["tenant_id"]
        application = self.find_application()
        if self.params["state"] == "absent":
            return self.ensure_absent(application)
        return self.ensure_present(application)

    def find_application(self):
        p = self.params
        found = self.step("looking up the app", lambda: self.graph.find_applications(
            display_name=p.get("display_name"), unique_name=p.get("unique_name"), app_id=p.get("app_id")))
        if len(found) > 1:
            listing = ", ".join("%s (app id %s)" % (a.get("id"), a.get("appId")) for a in found)
            raise StepError("%s: looking up the app" % self.label, ServiceError(
                "Microsoft Graph", "%d apps are named %r: %s" % (len(found), p.get("display_name"), listing),
                hint="display names are not unique: set app_id (or unique_name) to say which one, or delete the extra apps"))
        return found[0] if found else None

    def ensure_absent(self, application):
        before = {"state": "present" if application else "absent"}
        if application:
            before.update(display_name=application.get("displayName"), app_id=application.get("appId"))
            self.result.update(app_id=application.get("appId"), object_id=application.get("id"))
            self.act("delete app registration %s" % application.get("appId"),
                     lambda: self.graph.delete_application(application["id"]))
        return self.finish(before, {"state": "absent"})

    def ensure_present(self, application):
        p = self.params
        exchange_sp = self.step("reading the Office 365 Exchange Online service principal",
                                lambda: self.graph.get_service_principal(EXCHANGE_APP_ID))
        if not exchange_sp:
            raise StepError("%s: reading the Office 365 Exchange Online service principal" % self.label, ServiceError(
                "Microsoft Graph", "the directory has no service principal for Office 365 Exchange Online (%s)" % EXCHANGE_APP_ID,
                hint="the directory needs an Exchange Online subscription before CE can read its mailboxes"))
        try:
            wanted = exchange_role_ids(exchange_sp, p["exchange_permissions"])
        except ValueError as exc:
            raise StepError("%s: resolving exchange_permissions" % self.label, ServiceError("Microsoft Graph", str(exc)))
        names_by_id = dict((v.get("id"), v.get("value")) for v in exchange_sp.get("appRoles", []))
        wanted_ids = set(wanted.values())
        try:
            retained = exchange_role_ids(exchange_sp, p.get("retain_exchange_permissions") or [])
        except ValueError as exc:
            raise StepError("%s: resolving retain_exchange_permissions" % self.label, ServiceError("Microsoft Graph", str(exc)))
        # A retained permission stays when the app requests it already, and is not added otherwise: a run that does not see
        # every CE tenant of the directory (an AWX slice) must not revoke what another CE tenant relies on.
        if application is not None:
            wanted_ids |= set(retained.values()) & requested_role_ids(application.get("requiredResourceAccess"))

        before = self.describe(application, names_by_id)
        created = application is None
        if created:
            application, created = self.create_application(wanted_ids)
        else:
            self.update_application(application, wanted_ids)

        service_principal, sp_is_new = self.ensure_service_principal(application, app_is_new=created)
        self.result["service_principal_id"] = (service_principal or {}).get("id")

        consented = self.ensure_consent(service_principal, exchange_sp, wanted_ids, names_by_id, just_created=created or sp_is_new)
        secrets = self.ensure_secrets(application) if secret_options_of(p) else None

        self.result.update(display_name=p.get("display_name") or application.get("displayName"),
                           exchange_permissions=sorted(names_by_id.get(i, i) for i in wanted_ids),
                           consented_permissions=sorted(names_by_id.get(i, i) for i in consented))
        after = {"state": "present", "display_name": self.result["display_name"], "unique_name": p.get("unique_name") or
                 application.get("uniqueName"), "exchange_permissions": self.result["exchange_permissions"],
                 "consented_permissions": self.result["consented_permissions"], "service_principal": True}
        if secrets is not None:
            after["client_secrets"] = secrets
        return self.finish(before, after)

    def ensure_service_principal(self, application, app_is_new):
        """-> (service principal, whether replicas may not know it yet)."""
        app_id = application["appId"]
        if not app_is_new and not self.just_upserted:
            found = self.step("reading its service principal", lambda: self.graph.get_service_principal(app_id))
            if found is not None:
                return found, False

        def create():
            service_principal, created = self.graph.create_service_principal(app_id)
            # 409: another run created it a moment ago; theirs is the one (Graph allows one per app).
            return service_principal if created else AlreadyDone(service_principal)

        return self.act("create the service principal (enterprise application)", create), True

    def describe(self, application, names_by_id):
        if application is None:
            return {"state": "absent"}
        state = {"state": "present", "display_name": application.get("displayName"), "unique_name": application.get("uniqueName"),
                 "exchange_permissions": sorted(names_by_id.get(i, i) for i in requested_role_ids(application.get("requiredResourceAccess")))}
        options = secret_options_of(self.params)
        if options:
            state["client_secrets"] = [dict(secret_summary(c), name=o["name"]) for o in options for c in secrets_named(application, o["name"])]
        return state

    def create_application(self, wanted_ids):
        p = self.params
        if not p.get("display_name"):
            raise StepError("%s: creating the app" % self.label, ServiceError(
                "Microsoft Graph", "no app matches and display_name is not set", hint="set display_name to create the app"))
        body = {"displayName": p["display_name"], "signInAudience": "AzureADMyOrg",
                "requiredResourceAccess": desired_required_resource_access([], wanted_ids)}
        application = self.act("create app registration %r" % p["display_name"],
                               lambda: self.graph.create_application(body, unique_name=p.get("unique_name")))
        if self.check_mode:
            self.result.update(app_id=None, object_id=None)
            return {"appId": None, "id": None, "displayName": p["display_name"], "passwordCredentials": []}, True
        created = application is not None
        if not created:
            # The upsert answered 204: another run (an AWX slice, a second job) created the app between our read and
            # our write, and the upsert updated theirs instead of making a second one. Its replicas may lag a few seconds.
            self.actions[-1] = "create app registration %r: created by another run a moment ago, updated instead" % p["display_name"]
            self.just_upserted = True
            application = self.step("reading the app back", lambda: self.graph.get_application_by_unique_name(p["unique_name"]))
        self.result.update(app_id=application["appId"], object_id=application["id"])
        return application, created

    def update_application(self, application, wanted_ids):
        p = self.params
        self.result.update(app_id=application["appId"], object_id=application["id"])
        patch = {}
        if p.get("display_name") and application.get("displayName") != p["display_name"]:
            patch["displayName"] = p["display_name"]
        if requested_role_ids(application.get("requiredResourceAccess")) != wanted_ids:
            patch["requiredResourceAccess"] = desired_required_resource_access(application.get("requiredResourceAccess"), wanted_ids)
        if patch:
            self.act("update %s of the app registration" % " and ".join(sorted(patch)),
                     lambda: self.graph.update_application(application["id"], patch))

    def ensure_consent(self, service_principal, exchange_sp, wanted_ids, names_by_id, just_created):
        """Make the Exchange app role assignments equal ``wanted_ids``; return the resulting ids."""
        if self.check_mode and service_principal is None:
            current = {}
        else:
            assignments = self.step("reading its admin consent", lambda: self.graph.list_app_role_assignments(
                service_principal["id"], just_created=just_created))
            current = dict((a.get("appRoleId"), a.get("id")) for a in assignments if a.get("resourceId") == exchange_sp["id"])
        if not self.params["admin_consent"]:
            return set(current)
        principal_id = (service_principal or {}).get("id")
        for role_id in sorted(wanted_ids - set(current)):
            self.act("grant admin consent for %s" % names_by_id.get(role_id, role_id),
                     lambda role_id=role_id: self.graph.add_app_role_assignment(exchange_sp["id"], principal_id, role_id) or AlreadyDone())
        for role_id in sorted(set(current) - wanted_ids):
            self.act("revoke admin consent for %s" % names_by_id.get(role_id, role_id),
                     lambda role_id=role_id: self.graph.remove_app_role_assignment(principal_id, current[role_id]) or AlreadyDone())
        return set(wanted_ids)

    def ensure_secrets(self, application):
        """Every named secret asked for; secrets of other names are never touched. -> diff entries."""
        options = secret_options_of(self.params)
        by_name = {}
        for option in options:
            by_name[option["name"]] = self.ensure_secret(application, option)
        self.result["app_secrets"] = by_name
        if self.params.get("app_secret"):
            # The single-secret option keeps its flat result fields.
            only = by_name[options[0]["name"]]
            self.result.update(client_secret_created=only["created"], client_secret_key_id=only["key_id"],
                               client_secret_end=only["end_date_time"], client_secrets=only["secrets"])
            if "client_secret" in only:
                self.result["client_secret"] = only["client_secret"]
        return [dict(summary, name=name) for name, entry in by_name.items() for summary in entry["secrets"]]

    def ensure_secret(self, application, option):
        """One name's secrets -> its result entry (the value only when this run created it)."""
        name = option["name"]
        creds = secrets_named(application, name)
        create, remove = plan_secrets(creds, option, self.now)
        entry = {"name": name, "created": False}
        new = None
        if create:
            end = format_time(self.now + datetime.timedelta(days=option["lifetime_days"]))
            new = self.act("create client secret %r valid until %s" % (name, end),
                           lambda: self.graph.add_password(application["id"], name, end))
            if new is None:  # check mode
                new = {"keyId": None, "endDateTime": end, "displayName": name}
            entry["created"] = True
            if new.get("secretText"):
                entry["client_secret"] = new["secretText"]
        for key_id in remove:
            self.act("remove client secret %s (%s)" % (key_id, name),
                     lambda key_id=key_id: self.graph.remove_password(application["id"], key_id))
        remaining = ([new] if new else []) + [c for c in creds if c.get("keyId") not in remove]
        newest = remaining[0] if remaining else {}
        expired = [c["keyId"] for c in creds if parse_time(c.get("endDateTime")) <= self.now]
        entry.update(key_id=newest.get("keyId"), start_date_time=newest.get("startDateTime"), end_date_time=newest.get("endDateTime"),
                     secrets=[secret_summary(c) for c in remaining], removed_key_ids=list(remove), expired_key_ids=expired)
        return entry

    def finish(self, before, after):
        result = dict(self.result, changed=self.changed, actions=self.actions)
        result["diff"] = {"before": before, "after": after}
        return result
