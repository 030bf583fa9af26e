# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compare-and-act logic of exo_service_principal and exo_mailbox_permission: the runbook's
Exchange Online part as classes a unit test can drive with a fake ExchangeClient."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import (
    ExchangeError, is_entra_sp_not_found, is_existing_service_principal, is_not_found)
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.reconcile import AlreadyDone, Reconciler, StepError, TaskError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import is_guid

ACCESS_RIGHTS = ("FullAccess", "ReadPermission", "ChangePermission", "ChangeOwner", "DeleteItem", "ExternalAccount")
MAX_PARALLELISM = 32

# RFC 5322 dot-atom local part (an apostrophe is legal: o'brien@...), a domain with a dot.
_ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                      r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")

DENY_HINT = ("a Deny entry overrides any grant, so CE will be refused; if it is not intended remove it by hand "
             "(Remove-MailboxPermission -Identity %s -User %s -AccessRights %s -Deny)")


# -- pure helpers ---------------------------------------------------------------------------------
def is_address(value):
    return bool(value) and len(value) <= 320 and bool(_ADDRESS.fullmatch(value))


def normalise_mailboxes(mailboxes):
    """(unique addresses in order, problems). Duplicates differing only in case are one mailbox."""
    if not mailboxes:
        return [], ["mailboxes is empty: list at least one mailbox address (an empty list is usually a variable that did not "
                    "resolve; nothing was sent)"]
    bad = [m for m in mailboxes if not is_address((m or "").strip())]
    if bad:
        verb = "is" if len(bad) == 1 else "are"
        return [], ["%s not an email address (nothing was sent): %s" % (verb, ", ".join(repr(m) for m in bad[:10]))]
    seen, unique = set(), []
    for mailbox in mailboxes:
        mailbox = mailbox.strip()
        if mailbox.lower() not in seen:
            seen.add(mailbox.lower())
            unique.append(mailbox)
    return unique, []


def canonical_rights(values):
    """Exchange's AccessRights as a set of canonical names; it may send a list or "A, B"."""
    if values is None:
        return set()
    if isinstance(values, str):
        values = values.split(",")
    by_lower = dict((r.lower(), r) for r in ACCESS_RIGHTS)
    return set(by_lower.get(str(v).strip().lower(), str(v).strip()) for v in values if str(v).strip())


def truthy(value):
    return value is True or str(value).strip().lower() == "true"


def principal_names(principal, user):
    """The spellings of the principal Get-MailboxPermission may show in its User column. Not the display name: two
    service principals may share one (a directory where the runbook was walked twice), and an entry of the other is
    not ours."""
    names = {user} if user else set()
    for key in ("Identity", "Name", "ObjectId", "AppId", "ExternalDirectoryObjectId", "Sid"):
        value = (principal or {}).get(key)
        if isinstance(value, str) and value:
            names.add(value)
    return set(n.strip().lower() for n in names if n)


def summarise_entries(entries, names):
    """Rights of the principal on one mailbox: explicit allow, inherited allow, denied, and the
    inheritance type of each explicit right (needed to remove it exactly)."""
    explicit, inherited, denied, inheritance = set(), set(), set(), {}
    for entry in entries:
        user = entry.get("User")
        if isinstance(user, dict):
            user = user.get("Name") or user.get("Identity") or user.get("DisplayName")
        if str(user or "").strip().lower() not in names:
            continue
        rights = canonical_rights(entry.get("AccessRights"))
        if truthy(entry.get("Deny")):
            denied |= rights
        elif truthy(entry.get("IsInherited")):
            inherited |= rights
        else:
            explicit |= rights
            for right in rights:
                inheritance[right] = entry.get("InheritanceType") or "All"
    return explicit, inherited, denied, inheritance


# -- exo_service_principal ------------------------------------------------------------------------
# A GUID no Exchange object can have: a lookup by it proves the automation identity may read service principals.
NO_OBJECT = "00000000-0000-0000-0000-000000000000"


def same_id(left, right):
    return bool(left) and bool(right) and str(left).strip().lower() == str(right).strip().lower()


def service_principal_problems(params, check_mode=False):
    problems = []
    if not params.get("app_id"):
        if params["state"] == "absent" or not check_mode:
            problems.append("app_id is required: the Application (client) ID of CE's app (outside check mode; a plan may omit it "
                            "when the app does not exist yet)")
        return problems
    if not is_guid(params.get("app_id")):
        problems.append("app_id %r is not a GUID: use the Application (client) ID of CE's app" % (params.get("app_id"),))
    if params["state"] == "present":
        if not params.get("object_id"):
            problems.append("object_id is required with state=present: the Object ID of the app's service principal "
                            "(Enterprise applications), which azuread_app returns as service_principal_id")
        elif not is_guid(params["object_id"]):
            problems.append("object_id %r is not a GUID" % (params["object_id"],))
    return problems


class ServicePrincipalReconciler(Reconciler):
    """Exchange's service principal of one app. Ours is the one whose AppId is the app's, and only that one: whatever
    else a lookup answers is another app's and is never changed."""

    def __init__(self, exchange, graph, params, check_mode=False):
        super(ServicePrincipalReconciler, self).__init__(params, check_mode)
        self.exchange = exchange
        self.graph = graph
        self.result = {"app_id": params.get("app_id")}
        self.label = "Exchange service principal of app %s in directory %s" % (params.get("app_id") or "(not created yet)", params["tenant_id"])

    def run(self):
        p = self.params
        if not p.get("app_id"):
            return self.plan_for_new_app()
        existing = self.find_ours()
        before = describe_service_principal(existing)
        if p["state"] == "absent":
            if existing:
                self.act("remove the Exchange service principal %s of app %s" % (existing.get("ObjectId"), p["app_id"]),
                         lambda: self.exchange.remove_service_principal(identity_of(existing)))
            return self.finish(before, {"state": "absent"})

        directory_sp, application = self.verify_object_id()
        wanted_name = p.get("display_name") or (existing or {}).get("DisplayName") or (directory_sp or {}).get("displayName")
        current = existing
        if existing and not same_id(existing.get("ObjectId"), p["object_id"]):
            # Set-ServicePrincipal changes only DisplayName: a wrong object id can only be replaced. It is ours (its AppId is
            # the app's), so replacing it takes nothing from another app.
            self.act("repair the Exchange service principal of app %s: %s; remove it and register it again with the service "
                     "principal's object id %s (Exchange cannot change the ids of a service principal; its mailbox permissions "
                     "went with it and are granted again to %s by the mailbox task)"
                     % (p["app_id"], wrong_object_id_reason(existing.get("ObjectId"), application), p["object_id"], p["object_id"]),
                     lambda: self.exchange.remove_service_principal(identity_of(existing)))
            self.result["replaced_object_id"] = existing.get("ObjectId")
            current = None
        if current is None:
            created = self.act("create the Exchange service principal (New-ServicePrincipal -AppId %s -ObjectId %s)" % (p["app_id"], p["object_id"]),
                               lambda: self.create(wanted_name, verified=directory_sp is not None))
            current = created or {"AppId": p["app_id"], "ObjectId": p["object_id"], "DisplayName": wanted_name}
        elif p.get("display_name") and current.get("DisplayName") != p["display_name"]:
            self.act("rename the Exchange service principal from %r to %r" % (current.get("DisplayName"), p["display_name"]),
                     lambda: self.exchange.set_service_principal(identity_of(current), p["display_name"]))
            current = dict(current, DisplayName=p["display_name"])
        self.result.update(object_id=current.get("ObjectId") or p["object_id"], display_name=current.get("DisplayName"),
                           identity=current.get("Identity"))
        return self.finish(before, describe_service_principal(current))

    def plan_for_new_app(self):
        """Check mode before CE's app exists: read what the converge will read, so that an automation identity Exchange
        refuses fails the plan as it would fail the converge."""
        self.step("checking the automation identity's access to Exchange Online (Get-ServicePrincipal)",
                  lambda: self.exchange.service_principals(NO_OBJECT))
        self.act("create the Exchange service principal of CE's app once the Azure AD part has created the app", lambda: None)
        return self.finish({"state": "absent"}, {"state": "present", "app_id": None})

    def find_ours(self):
        """Exchange's service principal of this app, checked by AppId: a lookup may answer with other apps' objects."""
        app_id = self.params["app_id"]
        found = self.step("reading it (Get-ServicePrincipal -Identity %s)" % app_id, lambda: self.exchange.service_principals(app_id))
        ours = [sp for sp in found if same_id(sp.get("AppId"), app_id)]
        foreign = [sp for sp in found if not same_id(sp.get("AppId"), app_id)]
        if foreign:
            self.warnings.append("Get-ServicePrincipal -Identity %s also answered %s, of other apps: left alone"
                                 % (app_id, ", ".join("%s (app %s)" % (sp.get("ObjectId"), sp.get("AppId")) for sp in foreign[:5])))
        if len(ours) > 1:
            self.refuse("Exchange holds %d service principals with AppId %s (%s): remove the extra ones by hand "
                        "(Remove-ServicePrincipal -Identity <ObjectId>), then run again"
                        % (len(ours), app_id, ", ".join(sp.get("ObjectId") or "?" for sp in ours)))
        return ours[0] if ours else None

    def create(self, display_name, verified):
        p = self.params
        try:
            return self.exchange.new_service_principal(p["app_id"], p["object_id"], display_name, verified=verified)
        except ExchangeError as error:
            if is_existing_service_principal(error):
                found = [sp for sp in self.exchange.service_principals(p["app_id"]) if same_id(sp.get("AppId"), p["app_id"])]
                if found and same_id(found[0].get("ObjectId"), p["object_id"]):
                    # Another run created it between our read and our write.
                    return AlreadyDone(found[0])
            if is_entra_sp_not_found(error):
                error.hint = ("object_id must be the object id of the app's service principal (Enterprise applications > Object ID, "
                              "azuread_app's service_principal_id), not the application's object id; if the service principal was "
                              "created moments ago, Exchange may not see it yet: run again in a minute")
            raise

    def verify_object_id(self):
        """(the app's Entra service principal, its application object) from Graph; (None, None) when Graph cannot tell.
        Refuses the application's object id (or any other) before Exchange stores it."""
        p = self.params
        if not p.get("verify_object_id", True):
            return None, None
        if self.graph is None:
            self.warnings.append("object_id was not checked against Microsoft Graph: no credential for it was given (client_secret, "
                                 "client_certificate_path or managed_identity), so Exchange's own checks decide; set "
                                 "verify_object_id=false to silence this")
            return None, None
        try:
            directory_sp = self.graph.get_service_principal(p["app_id"])
            applications = self.graph.find_applications(app_id=p["app_id"])
        except ServiceError as error:
            self.warnings.append("could not check object_id against Microsoft Graph, so Exchange's own checks decide (%s)" % error.describe())
            return None, None
        application = next((a for a in applications if same_id(a.get("appId"), p["app_id"])), None)
        if directory_sp and same_id(directory_sp.get("appId"), p["app_id"]) and same_id(directory_sp.get("id"), p["object_id"]):
            return directory_sp, application
        if application and same_id(application.get("id"), p["object_id"]):
            self.refuse("object_id %s is the object id of the APPLICATION (App registrations > Object ID), not of its service principal; "
                        "Exchange needs the service principal's object id (Enterprise applications > %s > Object ID, or azuread_app's "
                        "service_principal_id)%s; with the application's id CE's IMAP login fails with AUTHENTICATE failed"
                        % (p["object_id"], (directory_sp or {}).get("displayName") or "the app",
                           ": %s" % directory_sp["id"] if directory_sp else ""))
        if directory_sp is None:
            self.refuse("the directory has no service principal for app %s%s: create it first (azuread_app, or Enterprise "
                        "applications); if the automation identity may only see apps it owns, set verify_object_id=false"
                        % (p["app_id"], "" if application else " (and no app registration with that Application (client) ID)"))
        self.refuse("object_id %s is not the service principal of app %s; that one has object id %s: use %s as object_id"
                    % (p["object_id"], p["app_id"], directory_sp["id"], directory_sp["id"]))
        return None, None


def wrong_object_id_reason(object_id, application):
    if application and same_id(application.get("id"), object_id):
        return ("it was registered with the APPLICATION's object id %s (the runbook's classic mistake: New-ServicePrincipal "
                "-ServiceId <App registrations > Object ID>), so CE's logins fail with AUTHENTICATE failed" % object_id)
    return "it was registered with object id %s, which is not the app's service principal" % object_id


def identity_of(service_principal):
    return service_principal.get("ObjectId") or service_principal.get("Identity")


def describe_service_principal(service_principal):
    if not service_principal:
        return {"state": "absent"}
    return {"state": "present", "app_id": service_principal.get("AppId"), "object_id": service_principal.get("ObjectId"),
            "display_name": service_principal.get("DisplayName")}


# -- exo_mailbox_permission -----------------------------------------------------------------------
def mailbox_permission_problems(params, check_mode=False):
    problems = []
    if not params.get("user") or not str(params["user"]).strip():
        if not check_mode or params["state"] == "absent":
            problems.append("user is required: the object id of the app's service principal (azuread_app's service_principal_id); "
                            "only a plan (check mode) may omit it, before the app exists")
    if not 1 <= params["parallelism"] <= MAX_PARALLELISM:
        problems.append("parallelism must be between 1 and %d (Exchange throttles more than that), not %s" % (MAX_PARALLELISM, params["parallelism"]))
    if not params.get("access_rights"):
        problems.append("access_rights is empty: name at least one right, e.g. FullAccess")
    mailboxes, mailbox_problems = normalise_mailboxes(params.get("mailboxes"))
    return mailboxes, problems + mailbox_problems


class MailboxPermissionReconciler(Reconciler):
    """One principal's rights on many mailboxes, a bounded number of mailboxes at a time.

    Every mailbox is read once (Get-MailboxPermission) and written at most once; failures are
    recorded per mailbox and the run goes on, except for failures that would hit every mailbox
    alike (credentials, roles, an unreachable host), which stop it. Only entries of the principal
    itself are ever added or removed: other principals' rights on the same mailbox are not ours.
    """

    def __init__(self, exchange, params, mailboxes, check_mode=False):
        super(MailboxPermissionReconciler, self).__init__(params, check_mode)
        self.exchange = exchange
        self.mailboxes = mailboxes
        self.wanted = canonical_rights(params["access_rights"])
        self.directory = params["tenant_id"]
        self.user = (params.get("user") or "").strip()
        self.label = "principal %s in directory %s" % (self.user or "(CE's app, not created yet)", self.directory)
        self._stop = threading.Event()
        self._fatal = []

    def resolve_principal(self):
        """Exchange's service principal whose ObjectId (or AppId) is ``user``, and nothing else a lookup may answer."""
        if not self.user:
            # A plan before CE's app exists: the mailboxes are read as the converge will read them.
            return {}
        found = self.step("looking up the principal (Get-ServicePrincipal -Identity %s)" % self.user,
                          lambda: self.exchange.service_principals(self.user))
        matching = [sp for sp in found if same_id(sp.get("ObjectId"), self.user) or same_id(sp.get("AppId"), self.user)]
        if len(found) > len(matching):
            self.warnings.append("Get-ServicePrincipal -Identity %s also answered %d service principal(s) of other apps; they were "
                                 "left alone" % (self.user, len(found) - len(matching)))
        if matching:
            return matching[0]
        message = ("Exchange Online of directory %s has no service principal with object id %s: register it first with "
                   "exo_service_principal (New-ServicePrincipal) using the service principal's object id (the application's "
                   "object id is not the same thing); no right was given to anyone else" % (self.directory, self.user))
        if not self.check_mode:
            self.refuse(message)
        # In check mode the service principal may just not be created yet by the task before.
        self.warnings.append("%s (check mode goes on, assuming it will be)" % message)
        return {}

    def run(self):
        principal = self.resolve_principal()
        names = principal_names(principal, self.user)
        grantee = principal.get("ObjectId") or self.user
        workers = min(self.params["parallelism"], len(self.mailboxes), self.exchange.max_parallelism)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            records = list(pool.map(lambda m: self.converge(m, names, grantee), self.mailboxes))
        return self.finish_mailboxes(principal, grantee, records)

    def converge(self, mailbox, names, grantee):
        record = {"mailbox": mailbox, "result": "unchanged", "access_rights": [], "added_rights": [], "removed_rights": [],
                  "inherited_rights": [], "denied_rights": [], "message": None, "request_id": None}
        if self._stop.is_set():
            return dict(record, result="failed", message="not processed: the run stopped at an earlier failure that affects every mailbox")
        doing = "reading permissions"
        try:
            entries = self.exchange.get_mailbox_permissions(mailbox)
            explicit, inherited, denied, inheritance = summarise_entries(entries, names)
            record.update(inherited_rights=sorted(inherited), denied_rights=sorted(denied), access_rights=sorted(explicit),
                          before=sorted(explicit))
            if self.params["state"] == "present":
                doing = "adding %s" % ", ".join(sorted(self.wanted - explicit))
                self.grant(record, mailbox, grantee, explicit, denied)
            else:
                doing = "removing %s" % ", ".join(sorted(self.wanted & explicit))
                self.revoke(record, mailbox, grantee, explicit, inheritance)
        except ExchangeError as error:
            record.update(result="failed", request_id=error.request_id, message=self.explain(mailbox, doing, error))
            if error.fatal:
                self._fatal.append(error)
                self._stop.set()
        return record

    def grant(self, record, mailbox, grantee, explicit, denied):
        blocked = self.wanted & denied
        if blocked:
            record.update(result="failed", message="%s has a Deny entry for %s on %s: %s" % (
                self.params["user"], ", ".join(sorted(blocked)), mailbox,
                DENY_HINT % (mailbox, grantee, ",".join(sorted(blocked)))))
            return
        missing = sorted(self.wanted - explicit)
        if record["inherited_rights"] and missing:
            record["message"] = "inherited %s does not count: an explicit entry is added" % ", ".join(record["inherited_rights"])
        if not missing:
            return
        added = True
        if not self.check_mode:
            added = self.exchange.add_mailbox_permission(mailbox, grantee, missing, self.params["inheritance_type"], self.params["automapping"])
        if added:
            record.update(result="added", added_rights=missing, access_rights=sorted(explicit | set(missing)))
        else:
            record.update(message="Exchange already had the entry (added concurrently)", access_rights=sorted(explicit | set(missing)))

    def revoke(self, record, mailbox, grantee, explicit, inheritance):
        present = sorted(self.wanted & explicit)
        removed = []
        # Exchange removes an entry only with its own inheritance type, so group the rights by it.
        by_type = {}
        for right in present:
            by_type.setdefault(inheritance.get(right, "All"), []).append(right)
        for inheritance_type, rights in sorted(by_type.items()):
            if self.check_mode or self.exchange.remove_mailbox_permission(mailbox, grantee, rights, inheritance_type):
                removed.extend(rights)
        if removed:
            record.update(result="removed", removed_rights=sorted(removed), access_rights=sorted(explicit - set(removed)))
        leftover = sorted(set(record["inherited_rights"]) & self.wanted)
        if leftover:
            record["message"] = ("inherited %s remains: it comes from a higher level and cannot be removed on the mailbox"
                                 % ", ".join(leftover))

    def explain(self, mailbox, doing, error):
        if is_not_found(error) and error.cmdlet == "Get-MailboxPermission":
            return ("mailbox %s does not exist in Exchange Online of directory %s (Exchange: %s)" % (mailbox, self.directory, error.message))
        text = "%s on %s failed: %s" % (doing, mailbox, error.describe())
        return text

    def finish_mailboxes(self, principal, grantee, records):
        failed = [r for r in records if r["result"] == "failed"]
        before = dict((r["mailbox"], r.pop("before")) for r in records if "before" in r)
        after = dict((r["mailbox"], r["access_rights"]) for r in records if r["mailbox"] in before)
        result = {
            "changed": any(r["result"] in ("added", "removed") for r in records),
            "principal": {"user": self.params["user"], "object_id": principal.get("ObjectId") or grantee, "app_id": principal.get("AppId"),
                          "display_name": principal.get("DisplayName"), "identity": principal.get("Identity")},
            "mailboxes": records,
            "invocations": dict(self.exchange.invocations),
            "diff": {"before": {"user": self.params["user"], "access_rights": before},
                     "after": {"user": self.params["user"], "access_rights": after}},
        }
        # Not top-level keys: Ansible would read a top-level "failed" as the task's own status.
        result["summary"] = dict((outcome, [r["mailbox"] for r in records if r["result"] == outcome])
                                 for outcome in ("added", "removed", "unchanged", "failed"))
        if self._fatal:
            skipped = sum(1 for r in records if (r["message"] or "").startswith("not processed"))
            raise StepError("%s: stopped, %d of %d mailboxes not processed" % (self.label, skipped, len(records)), self._fatal[0], result)
        if failed and self.params["fail_on_mailbox_error"]:
            reasons = "; ".join(r["message"] + (" (request id %s)" % r["request_id"] if r["request_id"] else "") for r in failed[:5])
            more = " (and %d more, see mailboxes)" % (len(failed) - 5) if len(failed) > 5 else ""
            raise TaskError("%s: %d of %d mailboxes failed (the others were processed): %s%s; fix those mailboxes (or remove them from "
                            "the list) and run again; fail_on_mailbox_error=false reports them without failing the task"
                            % (self.label, len(failed), len(records), reasons, more), result)
        for record in failed:
            self.warnings.append("%s: %s" % (record["mailbox"], record["message"]))
        return result
