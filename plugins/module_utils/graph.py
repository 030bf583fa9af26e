# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Microsoft Graph v1.0 calls the modules need, and nothing of Graph anywhere else."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import (
    ServiceError, Transport, error_object, foreign_link_problem, path_segment, retry_while)

SERVICE = "Microsoft Graph"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# Right after a create, Entra's replicas may not know the object yet (reference/microsoft-facts.md):
# waits between tries, about a minute in all, which covers what Microsoft documents as typical.
CONSISTENCY_DELAYS = (1, 2, 3, 5, 8, 13, 21)

HINTS = {
    "Authorization_RequestDenied": ("the automation identity lacks a Graph application permission: it needs Application.ReadWrite.All "
                                    "(or Application.ReadWrite.OwnedBy) and AppRoleAssignment.ReadWrite.All, with admin consent"),
    "InvalidAuthenticationToken": "the token was refused: check tenant_id, cloud and graph_endpoint belong together",
    "CredentialInvalidLifetimeAsPerAppPolicy": ("a tenant app management policy caps secret lifetimes: lower app_secrets[].lifetime_days "
                                                "(the role variable azuread_app_registration_secret_lifetime_days)"),
}


def graph_error_parser(response):
    """Graph nests its text as error.code / error.message / error.innerError.request-id."""
    error, unparsed = error_object(response)
    if error is None:
        return unparsed
    inner = error.get("innerError") or error.get("innererror") or {}
    return error.get("code"), error.get("message", ""), inner.get("request-id"), error.get("details") or []


def odata_quote(value):
    """A string literal for $filter and key segments: single quotes are doubled in OData."""
    return "'%s'" % value.replace("'", "''")


def segment(value):
    """An object id as a path segment (see _http.path_segment)."""
    return path_segment(value, SERVICE)


def by_key(collection, key, value):
    """``collection(key='value')``, an alternate-key segment: the value OData-quoted, then percent-encoded, so that
    "../x", "a#b" or "a?b" name that object and no other."""
    return "%s(%s=%s)" % (collection, key, path_segment(odata_quote(value), SERVICE, keep="'"))


def error_codes(error):
    """The error code and the codes of its details (Graph puts the specific one in details)."""
    codes = {error.code}
    codes.update(d.get("code") for d in error.details if isinstance(d, dict))
    return codes


def is_not_found(error):
    return error.status == 404


def is_missing_backing_app(error):
    return error.status == 400 and ("NoBackingApplicationObject" in error_codes(error)
                                    or "does not reference a valid application object" in (error.message or ""))


def is_duplicate_assignment(error):
    return error.status in (400, 409) and "already exists" in (error.message or "")


def is_key_conflict(error):
    """Another object already holds the key (another run created the service principal first)."""
    return error.status in (400, 409) and ("Request_MultipleObjectsWithSameKeyValue" in error_codes(error)
                                           or "ObjectConflict" in error_codes(error) or "already in use" in (error.message or ""))


class GraphClient:
    def __init__(self, auth, transport=None, sleep=time.sleep, consistency_delays=CONSISTENCY_DELAYS):
        self.auth = auth
        self.endpoint = auth.endpoints["graph_endpoint"]
        self.transport = transport or Transport(SERVICE, base_url=self.endpoint + "/v1.0", ca_path=auth.ca_path,
                                                validate_certs=auth.validate_certs, timeout=auth.timeout,
                                                error_parser=graph_error_parser)
        self.sleep = sleep
        self.consistency_delays = consistency_delays

    # -- plumbing -------------------------------------------------------------------------------
    def _call(self, method, path, expected=(200, 201, 204), fresh_token_on_denied=True, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2) if fresh_token_on_denied else (2,):
            headers["Authorization"] = "Bearer " + self.auth.graph_token()
            try:
                response = self.transport.request(method, path, expected=expected, headers=dict(headers), **kwargs)
                break
            except ServiceError as error:
                if attempt == 1 and error.status in (401, 403):
                    # A token's roles are fixed when it is issued: after an admin grants a missing
                    # permission, a cached token would keep failing for up to an hour. Try a fresh one once.
                    self.auth.forget_token(self.auth.endpoints["graph_resource"])
                    continue
                error.hint = error.hint or HINTS.get(error.code) or next((HINTS[c] for c in error_codes(error) if c in HINTS), None)
                raise
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path, params=None):
        return self._call("GET", path, params=params)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ServiceError as error:
            if is_not_found(error):
                return None
            raise

    def list(self, path, params=None):
        """Every item of a collection, following @odata.nextLink."""
        items = []
        page = self._call("GET", path, params=params)
        while True:
            items.extend(page.get("value", []))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return items
            problem = foreign_link_problem(next_link, self.endpoint, "the next page link (@odata.nextLink) of %s" % path)
            if problem:
                raise ServiceError(SERVICE, problem, method="GET", url=self.transport.url(path),
                                   hint="check graph_endpoint: it must be the endpoint that serves this directory")
            page = self._call("GET", next_link)

    def retry_while(self, transient, call):
        """Repeat ``call`` while Graph answers with an eventual-consistency error."""
        return retry_while(transient, call, self.consistency_delays, self.sleep)

    # -- applications ---------------------------------------------------------------------------
    def find_applications(self, display_name=None, unique_name=None, app_id=None):
        if app_id:
            found = self.get_or_none(by_key("applications", "appId", app_id))
            return [found] if found else []
        if unique_name:
            found = self.get_or_none(by_key("applications", "uniqueName", unique_name))
            return [found] if found else []
        return self.list("applications", params={"$filter": "displayName eq %s" % odata_quote(display_name)})

    def get_application_by_unique_name(self, unique_name):
        """The app another run has just created under ``unique_name``: replicas may 404 it for a few seconds."""
        return self.retry_while(is_not_found, lambda: self.get(by_key("applications", "uniqueName", unique_name)))

    def get_application(self, object_id, just_created=False):
        path = "applications/%s" % segment(object_id)
        if just_created:
            return self.retry_while(is_not_found, lambda: self.get(path))
        return self.get(path)

    def create_application(self, body, unique_name=None):
        if unique_name:
            # Upsert by alternate key: a retried create cannot make a second app with that key.
            return self._call("PATCH", by_key("applications", "uniqueName", unique_name), json=body,
                              headers={"Prefer": "create-if-missing"})
        return self._call("POST", "applications", json=body)

    def update_application(self, object_id, body):
        self._call("PATCH", "applications/%s" % segment(object_id), json=body)

    def delete_application(self, object_id):
        self._call("DELETE", "applications/%s" % segment(object_id))

    def add_password(self, object_id, display_name, end_date_time):
        body = {"passwordCredential": {"displayName": display_name, "endDateTime": end_date_time}}
        return self.retry_while(is_not_found, lambda: self._call("POST", "applications/%s/addPassword" % segment(object_id), json=body))

    def remove_password(self, object_id, key_id):
        self._call("POST", "applications/%s/removePassword" % segment(object_id), json={"keyId": key_id})

    # -- policies ---------------------------------------------------------------------------------
    def default_app_management_policy(self):
        """The tenant's default app management policy (secret lifetime limits), or None when there is none to read."""
        try:
            # Reading it needs Policy.Read.All, which the collection does not ask for: a refusal is expected, and a fresh token
            # would not change it.
            return self._call("GET", "policies/defaultAppManagementPolicy", fresh_token_on_denied=False)
        except ServiceError as error:
            if is_not_found(error) or error.status in (401, 403):
                return None
            raise

    # -- service principals ---------------------------------------------------------------------
    def get_service_principal(self, app_id):
        return self.get_or_none(by_key("servicePrincipals", "appId", app_id))

    def create_service_principal(self, app_id):
        """-> (service principal, created). When another run created it first, Graph answers 409: read theirs."""
        try:
            created = self.retry_while(is_missing_backing_app, lambda: self._call("POST", "servicePrincipals", json={"appId": app_id}))
            return created, True
        except ServiceError as error:
            if not is_key_conflict(error):
                raise
        return self.retry_while(is_not_found, lambda: self.get(by_key("servicePrincipals", "appId", app_id))), False

    # -- admin consent (app role assignments) ---------------------------------------------------
    def list_app_role_assignments(self, principal_id, just_created=False):
        path = "servicePrincipals/%s/appRoleAssignments" % segment(principal_id)
        if just_created:
            return self.retry_while(is_not_found, lambda: self.list(path))
        return self.list(path)

    def add_app_role_assignment(self, resource_id, principal_id, app_role_id):
        """Grant one application permission; False when it already existed (someone was faster)."""
        body = {"principalId": principal_id, "resourceId": resource_id, "appRoleId": app_role_id}

        def assign():
            try:
                self._call("POST", "servicePrincipals/%s/appRoleAssignedTo" % segment(resource_id), json=body)
                return True
            except ServiceError as error:
                if is_duplicate_assignment(error):
                    return False
                raise

        # A brand-new service principal may not be known to the replica yet: 400/404 "does not exist".
        return self.retry_while(lambda e: is_not_found(e) or (e.status == 400 and "does not exist" in (e.message or "")), assign)

    def remove_app_role_assignment(self, principal_id, assignment_id):
        """Revoke one; False when it was already gone (another run revoked it first)."""
        try:
            self._call("DELETE", "servicePrincipals/%s/appRoleAssignments/%s" % (segment(principal_id), segment(assignment_id)))
            return True
        except ServiceError as error:
            if is_not_found(error):
                return False
            raise
