"""The lab's Microsoft Graph: CRUD, paging, upsert, credentials, consent, authorization and the
eventual-consistency window, with Graph's status codes and error bodies."""

import datetime
import time

import pytest
from ceops_lab.testing import claims_of

EXO = "00000002-0000-0ff1-ce00-000000000000"
GRAPH = "00000003-0000-0000-c000-000000000000"
IMAP = "5e5addcd-3e8d-4e90-baf5-964efab2b20a"
POP = "cb842b43-da6e-4506-86fe-bb12199c656d"


def _error(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    return error


def test_application_crud_and_cascading_delete(graph, contoso):
    app = graph.create_app("CE Email", requiredResourceAccess=[{"resourceAppId": EXO, "resourceAccess": [{"id": IMAP, "type": "Role"}]}])
    assert app["signInAudience"] == "AzureADMyOrg" and app["passwordCredentials"] == [] and app["uniqueName"] is None
    assert app["id"] != app["appId"] and app["createdDateTime"].endswith("Z")
    for path in ("/applications/%s" % app["id"], "/applications(appId='%s')" % app["appId"]):
        got = graph.get(path)
        assert got.status_code == 200 and got.json()["displayName"] == "CE Email"
    assert graph.patch("/applications(appId='%s')" % app["appId"], {"notes": "managed by ansible"}).status_code == 204
    assert graph.get("/applications/%s" % app["id"]).json()["notes"] == "managed by ansible"
    found = graph.get("/applications?$filter=displayName eq 'CE Email'&$select=id,appId").json()["value"]
    assert found == [{"id": app["id"], "appId": app["appId"]}]

    sp = graph.create_sp(app["appId"])
    exchange = graph.resource_sp(EXO)
    assert graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"],
                      {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP}).status_code == 201

    assert graph.delete("/applications/%s" % app["id"]).status_code == 204
    _error(graph.get("/applications/%s" % app["id"]), 404, "Request_ResourceNotFound")
    _error(graph.get("/servicePrincipals/%s" % sp["id"]), 404, "Request_ResourceNotFound")
    assert graph.get("/servicePrincipals/%s/appRoleAssignedTo?$filter=principalId eq %s" % (exchange["id"], sp["id"])).json()["value"] == []


def test_graph_validation_errors(graph):
    _error(graph.post("/applications", {"notes": "no name"}), 400, "Request_BadRequest")
    error = _error(graph.post("/applications", {"displayName": "x", "colour": "red"}), 400, "Request_BadRequest")
    assert "colour" in error["message"]
    _error(graph.get("/applications?$filter=notes eq 'x'"), 400, "Request_UnsupportedQuery")
    _error(graph.get("/applications?$select=nosuchproperty"), 400, "BadRequest")
    _error(graph.get("/nosuch"), 400, "BadRequest")
    missing = _error(graph.get("/applications/0d0d0d0d-0000-4000-8000-000000000000"), 404, "Request_ResourceNotFound")
    assert missing["message"] == ("Resource '0d0d0d0d-0000-4000-8000-000000000000' does not exist or one of its queried "
                                  "reference-property objects are not present.")


def test_paging_follows_next_link(graph, fresh_lab):
    for index in range(5):
        graph.create_app("paged %d" % index)
    fresh_lab.set_faults("graph", page_size=2)
    names, url, pages = [], "/applications?$filter=startswith(displayName,'paged')", 0
    while url:
        body = graph.get(url).json()
        names += [a["displayName"] for a in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
        assert len(body["value"]) <= 2
    assert sorted(names) == ["paged %d" % i for i in range(5)] and pages == 3
    fresh_lab.clear_faults()
    assert len(graph.get("/applications?$top=1").json()["value"]) == 1
    assert "@odata.nextLink" in graph.get("/applications?$top=1").json()
    _error(graph.get("/applications?$top=1000"), 400, "Request_BadRequest")


def test_unique_name_upsert(graph):
    path = "/applications(uniqueName='ce-email-contoso')"
    _error(graph.patch(path, {"displayName": "CE Email"}), 404, "Request_ResourceNotFound")
    created = graph.patch(path, {"displayName": "CE Email"}, headers={"Prefer": "create-if-missing"})
    assert created.status_code == 201 and created.json()["uniqueName"] == "ce-email-contoso"
    updated = graph.patch(path, {"displayName": "CE Email (prod)"}, headers={"Prefer": "create-if-missing"})
    assert updated.status_code == 204 and updated.content == b""
    app = graph.get(path).json()
    assert app["id"] == created.json()["id"] and app["displayName"] == "CE Email (prod)"
    # uniqueName is immutable once set; setting the same value again is fine.
    _error(graph.patch("/applications/%s" % app["id"], {"uniqueName": "other"}), 400, "Request_BadRequest")
    assert graph.patch("/applications/%s" % app["id"], {"uniqueName": "ce-email-contoso"}).status_code == 204
    # ... and it can be set once on an application that has none.
    plain = graph.create_app("plain")
    assert graph.patch("/applications/%s" % plain["id"], {"uniqueName": "plain-key"}).status_code == 204
    _error(graph.patch("/applications/%s" % plain["id"], {"uniqueName": "ce-email-contoso"}), 400, "Request_BadRequest")
    _error(graph.post("/applications", {"displayName": "dup", "uniqueName": "plain-key"}), 409, "Request_MultipleObjectsWithSameKeyValue")


def test_add_and_remove_password(graph, contoso, token_request):
    app = graph.create_app("CE Email")
    graph.create_sp(app["appId"])
    response = graph.post("/applications/%s/addPassword" % app["id"], {"passwordCredential": {"displayName": "ce-2025"}})
    assert response.status_code == 200
    credential = response.json()
    assert credential.pop("@odata.context").endswith("$metadata#microsoft.graph.passwordCredential")
    assert set(credential) >= {"customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId", "secretText", "startDateTime"}
    assert credential["hint"] == credential["secretText"][:3] and len(credential["secretText"]) == 40
    lifetime = (datetime.datetime.fromisoformat(credential["endDateTime"].replace("Z", "+00:00"))
                - datetime.datetime.fromisoformat(credential["startDateTime"].replace("Z", "+00:00")))
    assert lifetime == datetime.timedelta(days=730)  # Graph's default: two years
    stored = graph.get("/applications/%s" % app["id"]).json()["passwordCredentials"]
    assert stored == [dict(credential, secretText=None)]  # the secret text is returned once, never again

    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": credential["secretText"],
            "scope": "https://outlook.office365.com/.default"}
    assert token_request(contoso["tenant_id"], form)[0] == 200
    assert graph.post("/applications/%s/removePassword" % app["id"], {"keyId": credential["keyId"]}).status_code == 204
    status, _, body = token_request(contoso["tenant_id"], form)
    assert status == 401 and body["error_codes"] == [7000215]
    _error(graph.post("/applications/%s/removePassword" % app["id"], {"keyId": credential["keyId"]}), 404, "Request_ResourceNotFound")
    _error(graph.patch("/applications/%s" % app["id"], {"passwordCredentials": [{"displayName": "x"}]}), 400, "Request_BadRequest")


def test_password_lifetime_policy(graph, fresh_lab, contoso):
    fresh_lab.set_policy("contoso", max_password_lifetime_days=180)
    app = graph.create_app("CE Email")
    error = _error(graph.post("/applications/%s/addPassword" % app["id"], {"passwordCredential": {"displayName": "default 2y"}}),
                   400, "CredentialInvalidLifetimeAsPerAppPolicy")
    assert error["message"].startswith("Credential lifetime exceeds the max value allowed as per assigned policy")
    assert error["details"][0]["code"] == "InvalidKeyEndDate"
    end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert graph.post("/applications/%s/addPassword" % app["id"], {"passwordCredential": {"endDateTime": end}}).status_code == 200
    assert fresh_lab.directory("contoso")["policy"]["max_password_lifetime_days"] == 180


def test_default_app_management_policy_needs_a_policy_read_permission(graph, fresh_lab, contoso):
    # The automation identity has Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All only: Graph refuses.
    _error(graph.get("/policies/defaultAppManagementPolicy"), 403, "Authorization_RequestDenied")
    fresh_lab.set_policy("contoso", max_password_lifetime_days=180)
    for role in ("Policy.Read.All", "Policy.Read.ApplicationConfiguration"):
        policy = graph.get("/policies/defaultAppManagementPolicy", token=fresh_lab.mint_token("contoso", roles=[role]))
        assert policy.status_code == 200, policy.text
        body = policy.json()
        assert body["@odata.context"].endswith("/v1.0/$metadata#policies/defaultAppManagementPolicy/$entity")
        assert body["isEnabled"] is True
        assert body["applicationRestrictions"]["passwordCredentials"] == [{
            "restrictionType": "passwordLifetime", "state": "enabled", "maxLifetime": "P180D",
            "restrictForAppsCreatedAfterDateTime": "2015-01-01T00:00:00Z"}]
        # The refusal of a longer secret names this policy's id.
        app = graph.create_app("CE Email %s" % role)
        error = _error(graph.post("/applications/%s/addPassword" % app["id"], {"passwordCredential": {"displayName": "2y"}}),
                       400, "CredentialInvalidLifetimeAsPerAppPolicy")
        assert body["id"] in error["message"]
    fresh_lab.set_policy("contoso", max_password_lifetime_days=None)
    unlimited = graph.get("/policies/defaultAppManagementPolicy", token=fresh_lab.mint_token("contoso", roles=["Policy.Read.All"]))
    assert unlimited.json()["applicationRestrictions"]["passwordCredentials"] == []


def test_service_principal_errors_and_upsert(graph):
    error = _error(graph.post("/servicePrincipals", {"appId": "12345678-1234-4234-8234-123456789012"}), 400, "Request_BadRequest")
    assert error["details"][0]["code"] == "NoBackingApplicationObject"
    assert error["message"] == ("The appId '12345678-1234-4234-8234-123456789012' of the service principal does not reference a valid "
                                "application object.")
    _error(graph.post("/servicePrincipals", {"appId": EXO}), 409, "Request_MultipleObjectsWithSameKeyValue")
    app = graph.create_app("CE Email")
    path = "/servicePrincipals(appId='%s')" % app["appId"]
    _error(graph.patch(path, {"tags": ["x"]}), 404, "Request_ResourceNotFound")
    created = graph.patch(path, {"tags": ["WindowsAzureActiveDirectoryIntegratedApp"]}, headers={"Prefer": "create-if-missing"})
    assert created.status_code == 201
    sp = created.json()
    assert sp["appId"] == app["appId"] and sp["servicePrincipalType"] == "Application" and sp["accountEnabled"] is True
    assert graph.patch(path, {"notes": "x"}, headers={"Prefer": "create-if-missing"}).status_code == 204
    assert graph.get("/servicePrincipals?$filter=appId eq '%s'" % app["appId"]).json()["value"][0]["id"] == sp["id"]
    # The Exchange resource SP exposes the app roles the collection resolves at run time.
    roles = {r["value"]: r["id"] for r in graph.resource_sp(EXO)["appRoles"]}
    assert roles["IMAP.AccessAsApp"] == IMAP and roles["SMTP.SendAsApp"] == "7146a1f0-8703-45b3-9eae-527a64c00995"


def test_app_role_assignments_and_consent(graph, fresh_lab, contoso, token_request):
    app = graph.create_app("CE Email")
    secret = graph.post("/applications/%s/addPassword" % app["id"], {}).json()["secretText"]
    sp = graph.create_sp(app["appId"])
    exchange = graph.resource_sp(EXO)
    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret,
            "scope": "https://outlook.office365.com/.default"}
    before = token_request(contoso["tenant_id"], form)[2]["access_token"]

    body = {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP}
    created = graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body)
    assert created.status_code == 201
    assignment = created.json()
    assert assignment["principalType"] == "ServicePrincipal" and assignment["resourceDisplayName"] == "Office 365 Exchange Online"
    assert assignment["principalDisplayName"] == "CE Email" and len(assignment["id"]) == 43  # not a GUID
    error = _error(graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body), 400, "Request_BadRequest")
    assert error["message"] == "Permission being assigned already exists on the object"
    other = dict(body, appRoleId=POP)
    assert graph.post("/servicePrincipals/%s/appRoleAssignments" % sp["id"], other).status_code == 201
    _error(graph.post("/servicePrincipals/%s/appRoleAssignments" % sp["id"], dict(body, appRoleId="0badc0de-0000-4000-8000-000000000000")),
           400, "Request_BadRequest")

    listed = graph.get("/servicePrincipals/%s/appRoleAssignments" % sp["id"]).json()["value"]
    assert {a["appRoleId"] for a in listed} == {IMAP, POP}
    # Tokens issued before the consent keep their roles; new tokens carry the new roles.
    assert "roles" not in claims_of(before)
    after = token_request(contoso["tenant_id"], form)[2]["access_token"]
    assert sorted(claims_of(after)["roles"]) == ["IMAP.AccessAsApp", "POP.AccessAsApp"]

    assert graph.delete("/servicePrincipals/%s/appRoleAssignedTo/%s" % (exchange["id"], assignment["id"])).status_code == 204
    _error(graph.delete("/servicePrincipals/%s/appRoleAssignedTo/%s" % (exchange["id"], assignment["id"])), 404, "Request_ResourceNotFound")
    assert claims_of(token_request(contoso["tenant_id"], form)[2]["access_token"])["roles"] == ["POP.AccessAsApp"]


def test_authentication_errors(graph, fresh_lab):
    response = graph.session.get(graph.base + "/applications", verify=fresh_lab.ca_file)
    error = _error(response, 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token is empty." and response.headers["WWW-Authenticate"].startswith("Bearer")
    _error(graph.get("/applications", token="garbage"), 401, "InvalidAuthenticationToken")
    expired = fresh_lab.mint_token("contoso", lifetime=-3600)
    assert _error(graph.get("/applications", token=expired), 401, "InvalidAuthenticationToken")["message"] == \
        "Lifetime validation failed, the token is expired."
    exchange_token = fresh_lab.mint_token("contoso", resource="https://outlook.office365.com")
    assert "Invalid audience" in _error(graph.get("/applications", token=exchange_token), 401, "InvalidAuthenticationToken")["message"]
    tampered = graph.token[:-6] + ("AAAAAA" if not graph.token.endswith("AAAAAA") else "BBBBBB")
    _error(graph.get("/applications", token=tampered), 401, "InvalidAuthenticationToken")


def test_authorization_follows_token_roles(graph, fresh_lab, contoso):
    no_roles = fresh_lab.mint_token("contoso", roles=[])
    error = _error(graph.get("/applications", token=no_roles), 403, "Authorization_RequestDenied")
    assert error["message"] == "Insufficient privileges to complete the operation."
    read_only = fresh_lab.mint_token("contoso", roles=["Application.Read.All"])
    assert graph.get("/applications", token=read_only).status_code == 200
    _error(graph.post("/applications", {"displayName": "x"}, token=read_only), 403, "Authorization_RequestDenied")

    # Revoking consent only affects tokens issued afterwards.
    fresh_lab.revoke_app_roles("contoso", "AppRoleAssignment.ReadWrite.All")
    exchange = graph.resource_sp(EXO)
    sp = graph.create_sp(graph.create_app("CE Email")["appId"])
    body = {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP}
    new_token = fresh_lab.token("contoso")
    assert "AppRoleAssignment.ReadWrite.All" not in claims_of(new_token)["roles"]
    _error(graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body, token=new_token), 403, "Authorization_RequestDenied")
    assert graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body).status_code == 201  # old token, old roles


def test_owned_by_only_sees_and_writes_its_own_apps(graph, fresh_lab, contoso):
    owned_by = fresh_lab.mint_token("contoso", roles=["Application.ReadWrite.OwnedBy"])
    mine = graph.post("/applications", {"displayName": "mine"}, token=owned_by)
    assert mine.status_code == 201
    listed = graph.get("/applications", token=owned_by).json()["value"]
    assert [a["displayName"] for a in listed] == ["mine"]
    _error(graph.get("/applications/%s" % contoso["automation_application_id"], token=owned_by), 403, "Authorization_RequestDenied")
    _error(graph.patch("/applications/%s" % contoso["automation_application_id"], {"notes": "x"}, token=owned_by),
           403, "Authorization_RequestDenied")
    assert graph.patch("/applications/%s" % mine.json()["id"], {"notes": "x"}, token=owned_by).status_code == 204
    assert graph.post("/servicePrincipals", {"appId": mine.json()["appId"]}, token=owned_by).status_code == 201
    owners = graph.get("/applications/%s/owners" % mine.json()["id"]).json()["value"]
    assert [o["id"] for o in owners] == [contoso["automation_service_principal_id"]]


def test_eventual_consistency_window(graph, fresh_lab, contoso, token_request):
    window = 0.8
    fresh_lab.set_consistency_window(window, directory="contoso")
    started = time.monotonic()
    app = graph.create_app("CE Email")
    secret = graph.post("/applications/%s/addPassword" % app["id"], {}).json()["secretText"]
    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret,
            "scope": "https://outlook.office365.com/.default"}
    # Reads by id / key 404 for a while; lists and filters already show the object.
    _error(graph.get("/applications/%s" % app["id"]), 404, "Request_ResourceNotFound")
    _error(graph.get("/applications(appId='%s')" % app["appId"]), 404, "Request_ResourceNotFound")
    assert graph.get("/applications?$filter=appId eq '%s'" % app["appId"]).json()["value"][0]["id"] == app["id"]
    error = _error(graph.post("/servicePrincipals", {"appId": app["appId"]}), 400, "Request_BadRequest")
    assert error["details"][0]["code"] == "NoBackingApplicationObject"
    time.sleep(max(0.0, window - (time.monotonic() - started)) + 0.05)
    assert graph.get("/applications/%s" % app["id"]).status_code == 200

    sp_started = time.monotonic()
    sp = graph.create_sp(app["appId"])
    exchange = graph.resource_sp(EXO)
    _error(graph.get("/servicePrincipals/%s" % sp["id"]), 404, "Request_ResourceNotFound")
    body = {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP}
    error = _error(graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body), 400, "Request_BadRequest")
    assert "does not exist" in error["message"]
    time.sleep(max(0.0, window - (time.monotonic() - sp_started)) + 0.05)
    assert graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body).status_code == 201
    granted = time.monotonic()
    # A fresh grant has not reached the token service yet: the new token lacks the role for a while.
    status, _, issued = token_request(contoso["tenant_id"], form)
    assert status == 200 and "roles" not in claims_of(issued["access_token"])
    time.sleep(max(0.0, window - (time.monotonic() - granted)) + 0.05)
    assert claims_of(token_request(contoso["tenant_id"], form)[2]["access_token"])["roles"] == ["IMAP.AccessAsApp"]
    # Other directories are not affected by contoso's window.
    fabrikam = graph.__class__(fresh_lab, fresh_lab.token("fabrikam"))
    other = fabrikam.create_app("CE Email")
    assert fabrikam.get("/applications/%s" % other["id"]).status_code == 200


def test_request_and_client_request_ids(graph):
    response = graph.get("/applications", headers={"client-request-id": "11111111-2222-4333-8444-555555555555"})
    assert response.headers["client-request-id"] == "11111111-2222-4333-8444-555555555555"
    assert response.headers["request-id"] and response.headers["request-id"] != response.headers["client-request-id"]
    error = graph.get("/applications/nope", headers={"client-request-id": "abc"}).json()["error"]
    assert error["innerError"]["client-request-id"] == "abc" and error["innerError"]["date"]


@pytest.mark.parametrize("directory", ["fabrikam", "northwind"])
def test_every_directory_is_seeded_alike(fresh_lab, directory):
    details = fresh_lab.directory(directory)
    claims = claims_of(fresh_lab.token(directory))
    assert claims["tid"] == details["tenant_id"]
    assert set(claims["roles"]) == {"Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"}
    state = fresh_lab.directory_state(directory)
    automation_sp = next(sp for sp in state["servicePrincipals"] if sp["id"] == details["automation_service_principal_id"])
    assert automation_sp["directory_roles"] == ["Exchange Administrator"]
    assert {sp["appId"] for sp in state["servicePrincipals"]} >= {EXO, GRAPH}
    assert len(details["mailboxes"]) == 6 and all(m.endswith("@" + details["domain"]) for m in details["mailboxes"])
