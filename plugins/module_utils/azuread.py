# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compare-and-act logic of azuread_app: the runbook's Azure AD part as functions a unit test can call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import json
import re

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.graph import EXCHANGE_APP_ID, GRAPH_APP_ID, error_codes
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.reconcile import AlreadyDone, Reconciler, StepError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.timestamps import format_time, parse_time

# The Exchange Online application permissions this collection manages: the runbook's, and sending. Other permissions of
# Exchange Online an app holds (an adopted app may hold some) are another tool's business and are never touched.
EXCHANGE_ROLE_NAMES = ("IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")

# Graph application permissions a write needs (any one of each set); checked against the token's roles before the first
# write, so that a plan (check mode) fails where the converge would.
WRITE_APPS = ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy")
WRITE_CONSENT = ("AppRoleAssignment.ReadWrite.All",)
LIFETIME_VARIABLE = "azuread_app_registration_secret_lifetime_days"


# -- pure helpers ---------------------------------------------------------------------------------
def exchange_role_ids(resource_sp, names):
    """Map permission names to the Exchange resource's app role ids, resolved at run time."""
    by_value = dict((role.get("value"), role.get("id")) for role in resource_sp.get("appRoles", []))
    missing = [name for name in names if name not in by_value]
    if missing:
        raise ValueError("Office 365 Exchange Online in this directory offers no application permission %s (it offers %s)"
                         % (", ".join(missing), ", ".join(sorted(v for v in by_value if v))))
    return dict((name, by_value[name]) for name in names)


def desired_required_resource_access(current, role_ids, managed_ids=None):
    """requiredResourceAccess with the Exchange entry's application roles among ``managed_ids`` set to ``role_ids``.

    Delegated scopes on Exchange, Exchange application roles outside ``managed_ids`` (None: all are managed) and entries
    for other APIs are kept as they are.
    """
    result = []
    exchange_entry = None
    for entry in current or []:
        if entry.get("resourceAppId") == EXCHANGE_APP_ID:
            exchange_entry = entry
        else:
            result.append(entry)
    kept = [a for a in (exchange_entry or {}).get("resourceAccess", [])
            if a.get("type") != "Role" or (managed_ids is not None and a.get("id") not in managed_ids)]
    access = kept + [{"id": role_id, "type": "Role"} for role_id in sorted(role_ids) if role_id not in [a.get("id") for a in kept]]
    if access:
        result.append({"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": access})
    return result


def requested_role_ids(required_resource_access):
    for entry in required_resource_access or []:
        if entry.get("resourceAppId") == EXCHANGE_APP_ID:
            return set(a.get("id") for a in entry.get("resourceAccess", []) if a.get("type") == "Role")
    return set()


API_NAMES = {EXCHANGE_APP_ID: "Office 365 Exchange Online", GRAPH_APP_ID: "Microsoft Graph"}


def other_parts(application, managed_ids, own_secret_names=None):
    """What an app holds that this collection does not manage, as words: other APIs' permissions and Exchange permissions that
    are not the runbook's application roles (the delegated User.Read the Entra admin center adds to every registration made
    by hand, too), certificates, and client secrets of names not in ``own_secret_names`` (None: secrets are not looked at).
    Whoever added them may use the app: it is not deleted."""
    parts = []
    for entry in (application or {}).get("requiredResourceAccess") or []:
        api = entry.get("resourceAppId")
        for access in entry.get("resourceAccess") or []:
            if api == EXCHANGE_APP_ID and access.get("type") == "Role" and access.get("id") in managed_ids:
                continue
            parts.append("%s permission %s of %s" % ("application" if access.get("type") == "Role" else "delegated", access.get("id"),
                                                     API_NAMES.get(api, "API %s" % api)))
    for cred in (application or {}).get("keyCredentials") or []:
        parts.append("certificate %r" % (cred.get("displayName") or cred.get("keyId")))
    if own_secret_names is not None:
        parts.extend("client secret %r" % (cred.get("displayName") or cred.get("keyId"))
                     for cred in (application or {}).get("passwordCredentials") or [] if cred.get("displayName") not in own_secret_names)
    return parts


def secrets_named(application, name):
    """Password credentials carrying ``name``, newest first: latest expiry, then latest start.

    The start breaks ties: two secrets made with the same lifetime in the same second (a rotation
    right after a create) must still sort the newer one first, or retire_previous would keep the old one.
    """
    never = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    creds = [c for c in application.get("passwordCredentials") or [] if c.get("displayName") == name]
    return sorted(creds, key=lambda c: (parse_time(c.get("endDateTime")) or never, parse_time(c.get("startDateTime")) or never),
                  reverse=True)


def secret_due(creds, options, now):
    """Why a new secret of this name is due, or None: none yet, the newest expires within renew_before_days, or a rotation
    was asked for."""
    if options.get("rotate"):
        return "rotation asked for"
    if not creds:
        return "none exists"
    newest_end = parse_time(creds[0].get("endDateTime"))
    if newest_end <= now + datetime.timedelta(days=options["renew_before_days"]):
        return "the newest expires %s" % format_time(newest_end)
    return None


def plan_secrets(creds, options, now):
    """Decide (create_new, key_ids_to_remove) for the secrets of one name.

    Expired secrets go always (they can only confuse); older valid ones only on retire_previous,
    because CE may still be using them until it has the new one. An entry naming remove_key_ids removes exactly those
    (of this name, if still there) and creates nothing. A report_only entry neither creates nor removes.
    """
    if options.get("report_only"):
        return False, []
    newest = creds[0] if creds else None
    create = secret_due(creds, options, now) is not None
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


def token_claims(token):
    """A JWT's claims, not verified (we hold the token, we are not its audience); {} when it is not one."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (IndexError, ValueError, TypeError, AttributeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_tenant(token):
    """The directory GUID from a token's claims (the caller may have named the directory by domain)."""
    return token_claims(token).get("tid")


_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T.*)?$")


def duration_days(text):
    """Whole days of an ISO 8601 duration such as P180D or P1Y (a year as 365 days, a month as 30); None otherwise."""
    match = _DURATION.match(str(text or "").strip().upper())
    if not match or not any(match.groups()[:4]):
        return None
    years, months, weeks, days = (int(g or 0) for g in match.groups()[:4])
    return years * 365 + months * 30 + weeks * 7 + days


def policy_lifetime_limit(policy, app_created=None):
    """Days a new password credential may live under a tenant app management policy (Graph tenantAppManagementPolicy),
    or None when it sets no limit for this app."""
    if not isinstance(policy, dict) or policy.get("isEnabled") is False:
        return None
    limits = []
    restrictions = (policy.get("applicationRestrictions") or {}).get("passwordCredentials") or []
    for restriction in restrictions:
        if restriction.get("restrictionType") != "passwordLifetime" or restriction.get("state") == "disabled":
            continue
        since = parse_time(restriction.get("restrictForAppsCreatedAfterDateTime"))
        if since and app_created and parse_time(app_created) and parse_time(app_created) < since:
            continue  # the policy spares apps made before that date
        days = duration_days(restriction.get("maxLifetime"))
        if days:
            limits.append(days)
    return min(limits) if limits else None


_NAMED_LIMIT = re.compile(r"(\d+)\s*days?|\b(P\d+[YMWD][0-9YMWDT]*)\b", re.I)


def lifetime_limit_named(error):
    """The policy's limit in days when Graph's refusal names it, else None."""
    texts = [error.message or ""] + [d.get("message") or "" for d in error.details if isinstance(d, dict)]
    for text in texts:
        for match in _NAMED_LIMIT.finditer(text):
            days = int(match.group(1)) if match.group(1) else duration_days(match.group(2))
            if days:
                return days
    return None


def is_lifetime_refusal(error):
    return error.status == 400 and "CredentialInvalidLifetimeAsPerAppPolicy" in error_codes(error)


# -- the reconciler -------------------------------------------------------------------------------
class AppReconciler(Reconciler):
    """CE's app registration, its service principal, the Exchange permissions this collection manages with their consent,
    and the client secrets named in the options.

    Which app is CE's: the one with O(app_id) when given; else the one with O(unique_name) (ours: we set it); else the one
    app of O(display_name) an administrator made by hand following the runbook (no uniqueName), which is adopted (marked
    with O(unique_name)) rather than duplicated; several such apps stop the run with the candidates. Nothing of an adopted
    app that is not the runbook's (other APIs' permissions, other Exchange permissions, secrets of other names) is touched.
    """

    def __init__(self, graph, auth, params, check_mode=False, now=None):
        super(AppReconciler, self).__init__(params, check_mode)
        self.graph = graph
        self.auth = auth
        self.now = now or datetime.datetime.now(datetime.timezone.utc)
        self.label = self._label()
        self.just_upserted = False
        self._roles = None
        self._fresh_roles = False
        self._policy_limit = False  # not read yet

    def _label(self):
        p = self.params
        name = p.get("app_id") or p.get("unique_name") or p.get("display_name")
        return "app %r in directory %s" % (name, p["tenant_id"])

    def run(self):
        token = self.step("getting a Graph token", self.auth.graph_token)
        claims = token_claims(token)
        self.result["tenant_id"] = claims.get("tid") or self.params["tenant_id"]
        self._roles = set(claims["roles"]) if isinstance(claims.get("roles"), list) else None
        application, found_by = self.find_application()
        if self.params["state"] == "absent":
            return self.ensure_absent(application, found_by)
        return self.ensure_present(application, found_by)

    # -- which app is CE's ----------------------------------------------------------------------------
    def find_application(self):
        """-> (application or None, how it was found: app_id, unique_name, adopted or None)."""
        p = self.params
        if p.get("app_id"):
            found = self.step("looking up the app by its Application (client) ID", lambda: self.graph.find_applications(app_id=p["app_id"]))
            found = [a for a in found if str(a.get("appId", "")).lower() == p["app_id"].lower()]
            if not found and p["state"] == "present":
                self.refuse("no app registration has Application (client) ID %s in this directory: correct app_id (the "
                            "azuread_app_registration role takes it from the inventory's ms_apps['%s'].app_id), or leave it unset "
                            "to find or create the app by its name" % (p["app_id"], p["tenant_id"]))
            return (found[0], "app_id") if found else (None, None)
        if p.get("unique_name"):
            found = self.step("looking up the app by its unique name", lambda: self.graph.find_applications(unique_name=p["unique_name"]))
            found = [a for a in found if a.get("uniqueName") == p["unique_name"]]
            if found:
                return found[0], "unique_name"
        if not p.get("display_name"):
            return None, None
        listed = self.step("looking up apps named %r" % p["display_name"], lambda: self.graph.find_applications(display_name=p["display_name"]))
        wanted = p["display_name"].strip().casefold()
        same_name = [a for a in listed if str(a.get("displayName") or "").strip().casefold() == wanted]
        # An app carrying a uniqueName was made by a tool that keys it: it is not the runbook's hand-made app.
        candidates = [a for a in same_name if not a.get("uniqueName")] if p.get("unique_name") else same_name
        if len(candidates) > 1:
            self.result["candidates"] = [describe_candidate(a) for a in sorted(candidates, key=lambda a: a.get("createdDateTime") or "")]
            self.refuse("%d app registrations are named %r and none is marked as CE's: %s. Pick the one CE should use by its "
                        "Application (client) ID: ms_apps['%s'].app_id in the inventory (the azuread_app_registration role "
                        "passes it as app_id); the others are left as they are"
                        % (len(candidates), p["display_name"], "; ".join(
                            "app id %(app_id)s created %(created)s (%(display_name)s)" % c for c in self.result["candidates"]),
                           p["tenant_id"]))
        if candidates:
            return candidates[0], "adopted" if p.get("unique_name") else "display_name"
        return None, None

    # -- state=absent -------------------------------------------------------------------------------------
    def ensure_absent(self, application, found_by):
        before = {"state": "present" if application else "absent"}
        if application:
            if found_by not in ("app_id", "unique_name"):
                self.refuse("app %s was found only by its display name %r: it is not provably this collection's, so it is not "
                            "deleted; name it by app_id (or unique_name) to delete it"
                            % (application.get("appId"), application.get("displayName")))
            before.update(display_name=application.get("displayName"), app_id=application.get("appId"))
            self.result.update(app_id=application.get("appId"), object_id=application.get("id"))
            exchange_sp = self.step("reading the Office 365 Exchange Online service principal",
                                    lambda: self.graph.get_service_principal(EXCHANGE_APP_ID)) or {}
            # Its secrets go with it (CE's, and any other: offboarding decides on those before it asks, fleet.app_removal).
            kept = other_parts(application, set(managed_roles(exchange_sp).values()))
            if kept:
                self.result["other_parts"] = kept
                self.refuse("app %s holds what this collection does not manage: %s. It is not deleted: whoever added that may use "
                            "the app. Remove those parts in the Entra admin center once nothing uses them, or delete the app there"
                            % (application.get("appId"), "; ".join(kept)))
            self.require(WRITE_APPS, "delete the app")
            self.act("delete app registration %s" % application.get("appId"),
                     lambda: self.graph.delete_application(application["id"]))
        return self.finish(before, {"state": "absent"})

    # -- state=present ------------------------------------------------------------------------------------
    def ensure_present(self, application, found_by):
        p = self.params
        exchange_sp = self.step("reading the Office 365 Exchange Online service principal",
                                lambda: self.graph.get_service_principal(EXCHANGE_APP_ID))
        if not exchange_sp:
            raise StepError("%s: reading the Office 365 Exchange Online service principal" % self.label, ServiceError(
                "Microsoft Graph", "the directory has no service principal for Office 365 Exchange Online (%s)" % EXCHANGE_APP_ID,
                hint="the directory needs an Exchange Online subscription before CE can read its mailboxes"))
        try:
            wanted = exchange_role_ids(exchange_sp, p["exchange_permissions"])
            retained = exchange_role_ids(exchange_sp, p.get("retain_exchange_permissions") or [])
            managed = managed_roles(exchange_sp)
        except ValueError as exc:
            raise StepError("%s: resolving exchange_permissions" % self.label, ServiceError("Microsoft Graph", str(exc)))
        names_by_id = dict((v.get("id"), v.get("value")) for v in exchange_sp.get("appRoles", []))
        managed_ids = set(managed.values())
        wanted_ids = set(wanted.values())
        # A retained permission stays when the app requests it already, and is not added otherwise: a run that does not see
        # every CE tenant of the directory (an AWX slice) must not revoke what another CE tenant relies on.
        if application is not None:
            wanted_ids |= set(retained.values()) & requested_role_ids(application.get("requiredResourceAccess"))

        self.result["found_by"] = found_by
        self.result["other_parts"] = other_parts(application, managed_ids, [o["name"] for o in secret_options_of(p)])
        before = self.describe(application, names_by_id, managed_ids)
        created = application is None
        if created:
            application, created = self.create_application(wanted_ids)
        else:
            self.update_application(application, wanted_ids, managed_ids, found_by)

        service_principal, sp_is_new = self.ensure_service_principal(application, app_is_new=created)
        self.result["service_principal_id"] = (service_principal or {}).get("id")

        consented = self.ensure_consent(service_principal, exchange_sp, wanted_ids, managed_ids, names_by_id,
                                        just_created=created or sp_is_new)
        secrets = self.ensure_secrets(application) if secret_options_of(p) else None

        self.result.update(display_name=application.get("displayName") or p.get("display_name"),
                           exchange_permissions=sorted(names_by_id.get(i, i) for i in wanted_ids),
                           consented_permissions=sorted(names_by_id.get(i, i) for i in consented))
        after = {"state": "present", "display_name": self.result["display_name"], "unique_name": self.result.get("unique_name"),
                 "exchange_permissions": self.result["exchange_permissions"],
                 "consented_permissions": self.result["consented_permissions"], "service_principal": True}
        if secrets is not None:
            after["client_secrets"] = secrets
        return self.finish(before, after)

    def require(self, permissions, what):
        """Refuse a write the automation identity's token does not allow, before it is sent (and in a plan)."""
        if self._roles is None or self._roles & set(permissions):
            return
        if not self._fresh_roles:
            # A token's roles are fixed when it is issued: a cached one may predate the grant. Ask once for a fresh one.
            self._fresh_roles = True
            self.auth.forget_token(self.auth.endpoints["graph_resource"])
            claims = token_claims(self.step("getting a fresh Graph token", self.auth.graph_token))
            self._roles = set(claims["roles"]) if isinstance(claims.get("roles"), list) else None
            return self.require(permissions, what)
        self.refuse("the automation identity (client id %s) may not %s: its Graph token holds none of %s (it holds %s). Grant it the "
                    "Microsoft Graph application permission %s with admin consent (docs/security.md), then run again"
                    % (getattr(self.auth, "client_id", None), what, ", ".join(permissions),
                       ", ".join(sorted(self._roles)) or "no application permission", permissions[0]))

    def ensure_service_principal(self, application, app_is_new):
        """-> (service principal, whether replicas may not know it yet)."""
        app_id = application["appId"]
        if not app_is_new and not self.just_upserted:
            found = self.step("reading its service principal", lambda: self.graph.get_service_principal(app_id))
            if found is not None and str(found.get("appId", "")).lower() == str(app_id).lower():
                return found, False

        def create():
            service_principal, created = self.graph.create_service_principal(app_id)
            # 409: another run created it a moment ago; theirs is the one (Graph allows one per app).
            return service_principal if created else AlreadyDone(service_principal)

        self.require(WRITE_APPS, "create the app's service principal")
        return self.act("create the service principal (enterprise application)", create), True

    def describe(self, application, names_by_id, managed_ids):
        if application is None:
            return {"state": "absent"}
        state = {"state": "present", "display_name": application.get("displayName"), "unique_name": application.get("uniqueName"),
                 "exchange_permissions": sorted(names_by_id.get(i, i) for i in requested_role_ids(application.get("requiredResourceAccess"))
                                                if i in managed_ids)}
        options = secret_options_of(self.params)
        if options:
            state["client_secrets"] = [dict(secret_summary(c), name=o["name"]) for o in options for c in secrets_named(application, o["name"])]
        return state

    def create_application(self, wanted_ids):
        p = self.params
        if not p.get("display_name"):
            self.refuse("no app matches and display_name is not set: set display_name to create the app")
        body = {"displayName": p["display_name"], "signInAudience": "AzureADMyOrg",
                "requiredResourceAccess": desired_required_resource_access([], wanted_ids)}
        self.require(WRITE_APPS, "create the app registration")
        application = self.act("create app registration %r" % p["display_name"],
                               lambda: self.graph.create_application(body, unique_name=p.get("unique_name")))
        if self.check_mode:
            self.result.update(app_id=None, object_id=None, unique_name=p.get("unique_name"))
            return {"appId": None, "id": None, "displayName": p["display_name"], "passwordCredentials": []}, True
        created = application is not None
        if not created:
            # The upsert answered 204: another run (an AWX slice, a second job) created the app between our read and
            # our write, and the upsert updated theirs instead of making a second one. Its replicas may lag a few seconds.
            self.actions[-1] = "create app registration %r: created by another run a moment ago, updated instead" % p["display_name"]
            self.just_upserted = True
            application = self.step("reading the app back", lambda: self.graph.get_application_by_unique_name(p["unique_name"]))
        self.result.update(app_id=application["appId"], object_id=application["id"], unique_name=application.get("uniqueName"))
        return application, created

    def update_application(self, application, wanted_ids, managed_ids, found_by):
        p = self.params
        self.result.update(app_id=application["appId"], object_id=application["id"], unique_name=application.get("uniqueName"))
        patch = {}
        if found_by == "unique_name" and p.get("display_name") and application.get("displayName") != p["display_name"]:
            # Only an app this collection made is renamed; an adopted or picked one keeps the name its administrator gave it.
            patch["displayName"] = p["display_name"]
        if found_by in ("adopted", "app_id") and p.get("unique_name") and not application.get("uniqueName"):
            # Marks the adopted app as CE's, so that later runs find it exactly, whatever else is named like it. A uniqueName
            # can be set once, while it is null.
            patch["uniqueName"] = p["unique_name"]
        requested = requested_role_ids(application.get("requiredResourceAccess"))
        if requested & managed_ids != wanted_ids:
            patch["requiredResourceAccess"] = desired_required_resource_access(application.get("requiredResourceAccess"), wanted_ids, managed_ids)
        if patch:
            what = {"displayName": "display name", "uniqueName": "unique name %r" % p.get("unique_name"),
                    "requiredResourceAccess": "requested Exchange permissions"}
            verb = "adopt app registration %r (app id %s, made by hand on %s): set" % (
                application.get("displayName"), application.get("appId"), (application.get("createdDateTime") or "?")[:10]) \
                if "uniqueName" in patch else "update"
            self.require(WRITE_APPS, "update the app registration")
            self.act("%s %s of the app registration" % (verb, " and ".join(what[k] for k in sorted(patch))),
                     lambda: self.graph.update_application(application["id"], patch))
            if "uniqueName" in patch:
                self.result["unique_name"] = p["unique_name"]
        self.result["adopted"] = found_by in ("adopted", "app_id") and "uniqueName" in patch

    def ensure_consent(self, service_principal, exchange_sp, wanted_ids, managed_ids, names_by_id, just_created):
        """Make the consent for the managed Exchange permissions equal ``wanted_ids``; return the resulting managed ids.
        Consent for any other permission is left as it is."""
        if self.check_mode and service_principal is None:
            current = {}
        else:
            assignments = self.step("reading its admin consent", lambda: self.graph.list_app_role_assignments(
                service_principal["id"], just_created=just_created))
            current = dict((a.get("appRoleId"), a.get("id")) for a in assignments
                           if a.get("resourceId") == exchange_sp["id"] and a.get("appRoleId") in managed_ids)
        if not self.params["admin_consent"]:
            return set(current)
        principal_id = (service_principal or {}).get("id")
        to_grant, to_revoke = sorted(wanted_ids - set(current)), sorted(set(current) - wanted_ids)
        if to_grant or to_revoke:
            self.require(WRITE_CONSENT, "grant or revoke admin consent")
        for role_id in to_grant:
            self.act("grant admin consent for %s" % names_by_id.get(role_id, role_id),
                     lambda role_id=role_id: self.graph.add_app_role_assignment(exchange_sp["id"], principal_id, role_id) or AlreadyDone())
        for role_id in to_revoke:
            self.act("revoke admin consent for %s" % names_by_id.get(role_id, role_id),
                     lambda role_id=role_id: self.graph.remove_app_role_assignment(principal_id, current[role_id]) or AlreadyDone())
        return set(wanted_ids)

    # -- client secrets -----------------------------------------------------------------------------------
    def ensure_secrets(self, application):
        """Every named secret asked for; secrets of other names are never touched. -> diff entries."""
        options = secret_options_of(self.params)
        # Filled as each name is done: when a later one fails, the result still holds the secrets made before it.
        by_name = self.result["app_secrets"] = {}
        for option in options:
            by_name[option["name"]] = self.ensure_secret(application, option)
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
        entry = {"name": name, "created": False, "due": secret_due(creds, option, self.now)}
        new = None
        if create:
            self.require(WRITE_APPS, "create a client secret")
            new = self.create_secret(application, name, option["lifetime_days"])
            entry["created"] = True
            if new.get("secretText"):
                entry["client_secret"] = new["secretText"]
        if remove:
            self.require(WRITE_APPS, "remove a client secret")
        for key_id in remove:
            self.act("remove client secret %s (%s)" % (key_id, name),
                     lambda key_id=key_id: self.graph.remove_password(application["id"], key_id))
        remaining = ([new] if new else []) + [c for c in creds if c.get("keyId") not in remove]
        newest = remaining[0] if remaining else {}
        expired = [c["keyId"] for c in creds if parse_time(c.get("endDateTime")) <= self.now]
        entry.update(key_id=newest.get("keyId"), start_date_time=newest.get("startDateTime"), end_date_time=newest.get("endDateTime"),
                     secrets=[secret_summary(c) for c in remaining], removed_key_ids=list(remove), expired_key_ids=expired)
        return entry

    def create_secret(self, application, name, lifetime_days):
        """addPassword within the directory's secret lifetime policy: capped at its limit when the policy can be read, retried
        once at the limit Graph's refusal names, and otherwise refused with the setting that fixes it."""
        limit = self.policy_limit(application)
        days = lifetime_days
        if limit and lifetime_days > limit:
            self.warnings.append("client secret %r: the directory's app management policy allows secrets of at most %d days, so the "
                                 "new one is valid for %d days instead of %d (%s)" % (name, limit, limit, lifetime_days, LIFETIME_VARIABLE))
            days = limit

        def add():
            try:
                return self.graph.add_password(application["id"], name, format_time(self.now + datetime.timedelta(days=days)))
            except ServiceError as error:
                if not is_lifetime_refusal(error):
                    raise
                named = lifetime_limit_named(error)
                if named and named < days:
                    self.warnings.append("client secret %r: Graph refused %d days under the directory's app management policy and "
                                         "named its limit, %d days; made it with that lifetime (%s)" % (name, days, named, LIFETIME_VARIABLE))
                    return self.graph.add_password(application["id"], name, format_time(self.now + datetime.timedelta(days=named)))
                error.hint = ("the directory's app management policy caps client secret lifetimes below %d days: set %s (app_secrets[]."
                              "lifetime_days of azuread_app) to the policy's limit, which its administrator can read under Entra ID > "
                              "Enterprise applications > Application policies; or grant the automation identity Policy.Read.All "
                              "(or Policy.Read.ApplicationConfiguration) so that the limit is read and applied by itself" % (days, LIFETIME_VARIABLE))
                raise

        end = format_time(self.now + datetime.timedelta(days=days))
        new = self.act("create client secret %r valid until %s" % (name, end), add)
        return new if new is not None else {"keyId": None, "endDateTime": end, "displayName": name}

    def policy_limit(self, application):
        """Days the directory's default app management policy lets a new secret live, or None (no limit, or unreadable:
        reading it needs Policy.Read.All or Policy.Read.ApplicationConfiguration, which the collection does not require)."""
        if self._policy_limit is False:
            try:
                policy = self.graph.default_app_management_policy()
            except ServiceError:
                policy = None
            self._policy_limit = policy_lifetime_limit(policy, application.get("createdDateTime"))
        return self._policy_limit


def role_values(resource_sp):
    return set(role.get("value") for role in resource_sp.get("appRoles", []))


def managed_roles(exchange_sp):
    """{name: app role id} of the runbook's Exchange application permissions the directory offers: the ones this module manages."""
    return exchange_role_ids(exchange_sp, [n for n in EXCHANGE_ROLE_NAMES if n in role_values(exchange_sp)])


def describe_candidate(application):
    return {"display_name": application.get("displayName"), "app_id": application.get("appId"),
            "created": (application.get("createdDateTime") or "unknown")[:10]}
