"""The lab's Exchange Online InvokeCommand endpoint: msal tokens from the lab's Entra, cmdlets against
the shared directories, Exchange's error shapes, app-only authorization, paging and counters."""

import re

import msal
import pytest
from ceops_lab.testing import LabHttpClient
from lab_helpers import Exchange, reason_of

EXO_SCOPE = ["https://outlook.office365.com/.default"]
MAILBOX = "ce-support@contoso.onmicrosoft.com"


@pytest.fixture
def exo_token(fresh_lab, contoso):
    app = msal.ConfidentialClientApplication(contoso["automation_client_id"], client_credential=contoso["automation_client_secret"],
                                             authority="%s/%s" % (fresh_lab.login_url, contoso["tenant_id"]), instance_discovery=False,
                                             http_client=LabHttpClient(fresh_lab.ca_file))
    result = app.acquire_token_for_client(EXO_SCOPE)
    assert "access_token" in result, result
    return result["access_token"]


@pytest.fixture
def exo(fresh_lab, contoso, exo_token):
    caller = Exchange(fresh_lab, exo_token, contoso["domain"])
    yield caller
    caller.session.close()


@pytest.fixture
def registered(exo, contoso):
    """The automation identity registered as an Exchange service principal (its real SP object id)."""
    value = exo.ok("New-ServicePrincipal", {"AppId": contoso["automation_client_id"], "ObjectId": contoso["automation_service_principal_id"]})
    return value[0]


def test_get_mailbox_pages_with_next_link_and_same_body(fresh_lab, exo, contoso):
    first = exo.run("Get-Mailbox", headers={"Prefer": "odata.maxpagesize=4", "client-request-id": "6d1d7c5b-1111-4c3a-9d0e-123456789abc"})
    assert first.status_code == 200, first.text
    assert first.headers["client-request-id"] == "6d1d7c5b-1111-4c3a-9d0e-123456789abc"
    assert first.headers["request-id"] and first.headers["Preference-Applied"] == "odata.maxpagesize=4"
    body = first.json()
    assert body["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    assert len(body["value"]) == 4 and body["@adminapi.warnings"] == []
    next_link = body["@odata.nextLink"]
    assert next_link.startswith(fresh_lab.url("exchange") + "/adminapi/beta/") and "$skiptoken=" in next_link
    second = exo.post(next_link, "Get-Mailbox", headers={"Prefer": "odata.maxpagesize=4"}).json()
    assert "@odata.nextLink" not in second
    mailboxes = body["value"] + second["value"]
    assert [m["PrimarySmtpAddress"] for m in mailboxes] == contoso["mailboxes"]
    support = mailboxes[0]
    assert support["Identity"] == support["Name"] == support["Alias"] == "ce-support"
    assert support["RecipientTypeDetails"] == "UserMailbox" and re.match(r"^[0-9a-f-]{36}$", support["ExchangeGuid"])
    assert {m["RecipientTypeDetails"] for m in mailboxes} == {"UserMailbox", "SharedMailbox"}

    # A skiptoken is bound to the request it came from.
    replay = exo.post(next_link, "Get-Mailbox", {"ResultSize": "Unlimited"})
    assert replay.status_code == 400 and "skip token" in reason_of(replay.json())

    # -ResultSize truncates with Exchange's warning; -Identity finds by address, alias or GUID.
    truncated = exo.run("Get-Mailbox", {"ResultSize": 2}).json()
    assert len(truncated["value"]) == 2 and truncated["@adminapi.warnings"][0].startswith("There are more results available")
    for identity in (MAILBOX, "CE-SUPPORT", support["ExchangeGuid"]):
        assert exo.ok("Get-Mailbox", {"Identity": identity})[0]["Identity"] == "ce-support"

    counters = fresh_lab.counters()["services"]["exchange"]
    assert counters["reads"] == {"POST InvokeCommand Get-Mailbox": 7} and counters["writes"] == {}


def test_cmdlet_error_shapes(exo):
    missing = exo.run("Get-Mailbox", {"Identity": "nobody@contoso.onmicrosoft.com"})
    assert missing.status_code == 404
    body = missing.json()
    error = body["error"]
    assert error["code"] == "NotFound" and error["message"] == "Error executing cmdlet"
    assert re.match(r"^Ex6F9304\|Microsoft\.Exchange\.Configuration\.Tasks\.ManagementObjectNotFoundException\|The operation couldn't be "
                    r"performed because object 'nobody@contoso\.onmicrosoft\.com' couldn't be found on '[A-Z0-9.]+'\.$",
                    error["details"][0]["message"])
    assert error["innererror"]["internalexception"]["message"].startswith("Exception of type")
    assert body["@adminapi.warnings"] == []

    unknown_parameter = exo.run("Get-Mailbox", {"Identiti": "x"})
    assert unknown_parameter.status_code == 400
    error = unknown_parameter.json()["error"]
    assert error["message"] == "Invalid Operation" and "details" not in error
    assert reason_of(unknown_parameter.json()) == "A parameter cannot be found that matches parameter name 'Identiti'."

    unknown_cmdlet = exo.run("Remove-Mailbox", {"Identity": "ce-support"})
    assert unknown_cmdlet.status_code == 400 and "'Remove-Mailbox' is not recognized" in reason_of(unknown_cmdlet.json())

    missing_mandatory = exo.run("Add-MailboxPermission", {"Identity": "ce-support"})
    assert reason_of(missing_mandatory.json()) == ("Cannot process command because of one or more missing mandatory parameters: "
                                                   "User AccessRights.")
    bad_enum = exo.run("Add-MailboxPermission", {"Identity": "ce-support", "User": "x", "AccessRights": ["FullControl"]})
    assert "Unable to match the identifier name FullControl" in reason_of(bad_enum.json())


def test_new_service_principal_needs_the_service_principal_object_id(fresh_lab, exo, graph):
    app = graph.create_app("CE Email")
    sp = graph.create_sp(app["appId"])

    wrong = exo.run("New-ServicePrincipal", {"AppId": app["appId"], "ObjectId": app["id"], "DisplayName": "CE Email"})
    assert wrong.status_code == 400 and wrong.json()["error"]["message"] == "Invalid Operation"
    assert reason_of(wrong.json()) == ("The service principal with ObjectId '%s' and AppId '%s' couldn't be found in Microsoft Entra ID "
                                       "for this organization." % (app["id"], app["appId"]))

    created = exo.ok("New-ServicePrincipal", {"AppId": app["appId"], "ObjectId": sp["id"]})[0]
    assert created["AppId"] == app["appId"] and created["ObjectId"] == sp["id"] == created["Identity"]
    assert created["DisplayName"] == "CE Email"  # taken from Entra when not given

    again = exo.run("New-ServicePrincipal", {"AppId": app["appId"], "ObjectId": sp["id"]})
    assert again.status_code == 400 and "already exists" in reason_of(again.json())

    # The deprecated -ServiceId still works, with a warning.
    other = graph.create_app("CE Email 2")
    other_sp = graph.create_sp(other["appId"])
    response = exo.run("New-ServicePrincipal", {"AppId": other["appId"], "ServiceId": other_sp["id"],
                                                "Organization": graph.lab.directory("contoso")["tenant_id"]})
    assert response.status_code == 200 and "deprecated" in response.json()["@adminapi.warnings"][0]

    for identity in (app["appId"], sp["id"], created["ExchangeObjectId"]):
        assert exo.ok("Get-ServicePrincipal", {"Identity": identity})[0]["ObjectId"] == sp["id"]
    assert len(exo.ok("Get-ServicePrincipal")) == 2
    assert exo.ok("Set-ServicePrincipal", {"Identity": app["appId"], "DisplayName": "CE Email (prod)"}) == []
    assert exo.ok("Get-ServicePrincipal", {"Identity": sp["id"]})[0]["DisplayName"] == "CE Email (prod)"
    set_ids = exo.run("Set-ServicePrincipal", {"Identity": app["appId"], "ObjectId": app["id"]})
    assert reason_of(set_ids.json()) == "A parameter cannot be found that matches parameter name 'ObjectId'."
    assert exo.ok("Remove-ServicePrincipal", {"Identity": sp["id"], "Confirm": False}) == []
    gone = exo.run("Get-ServicePrincipal", {"Identity": app["appId"]})
    assert gone.status_code == 404 and "couldn't be found" in reason_of(gone.json())


def test_validation_can_be_switched_off_like_older_exchange(fresh_lab, exo, contoso):
    fresh_lab.exchange_settings("contoso", validate_service_principals=False)
    # Exchange now accepts the application object id: only the client's own guard can catch it.
    value = exo.ok("New-ServicePrincipal", {"AppId": contoso["automation_client_id"], "ObjectId": contoso["automation_application_id"]})
    assert value[0]["ObjectId"] == contoso["automation_application_id"]


def test_mailbox_permission_add_duplicate_remove(fresh_lab, exo, registered, contoso):
    sp_id = contoso["automation_service_principal_id"]
    defaults = exo.ok("Get-MailboxPermission", {"Identity": MAILBOX})
    assert defaults[0]["User"] == "NT AUTHORITY\\SELF" and defaults[0]["AccessRights"] == ["FullAccess", "ReadPermission"]
    assert any(e["IsInherited"] and e["Deny"] and e["AccessRights"] == ["FullAccess"] for e in defaults)
    assert any(e["IsInherited"] and not e["Deny"] and "FullAccess" in e["AccessRights"] for e in defaults)
    assert exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "User": sp_id}) == []

    added = exo.ok("Add-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"], "InheritanceType": "All",
                                            "AutoMapping": False})
    assert added == [dict(added[0], Identity="ce-support", User=sp_id, AccessRights=["FullAccess"], IsInherited=False, Deny=False,
                          InheritanceType="All")]

    duplicate = exo.run("Add-MailboxPermission", {"Identity": "ce-support", "User": contoso["automation_client_id"],
                                                  "AccessRights": "FullAccess"})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["details"][0]["message"] == (
        "|Microsoft.Exchange.Configuration.Tasks.TaskException|An existing permission entry was found for user: %s." % sp_id)

    # -User filters server-side, whatever identity of the principal is given.
    for user in (sp_id, contoso["automation_client_id"]):
        entries = exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "User": user})
        assert [(e["User"], e["AccessRights"], e["IsInherited"], e["Deny"]) for e in entries] == [(sp_id, ["FullAccess"], False, False)]
    full = exo.ok("Get-MailboxPermission", {"Identity": MAILBOX})
    assert len(full) == len(defaults) + 1 and full[1]["User"] == sp_id  # explicit entries come before inherited ones

    assert exo.ok("Remove-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"],
                                               "InheritanceType": "All", "Confirm": False}) == []
    assert exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "User": sp_id}) == []
    again = exo.run("Remove-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"], "Confirm": False})
    assert again.status_code == 200 and again.json()["value"] == []
    assert again.json()["@adminapi.warnings"][0].startswith("Can't remove the access control entry")

    unknown_mailbox = exo.run("Add-MailboxPermission", {"Identity": "nobody", "User": sp_id, "AccessRights": ["FullAccess"]})
    assert unknown_mailbox.status_code == 404 and "object 'nobody' couldn't be found" in reason_of(unknown_mailbox.json())
    unknown_user = exo.run("Add-MailboxPermission", {"Identity": MAILBOX, "User": contoso["automation_application_id"],
                                                     "AccessRights": ["FullAccess"]})
    assert unknown_user.status_code == 404
    assert reason_of(unknown_user.json()) == ('User or group "%s" wasn\'t found. Please make sure you\'ve typed it correctly.'
                                              % contoso["automation_application_id"])


def test_inherited_and_deny_entries_are_reported_as_such(fresh_lab, exo, registered, contoso):
    sp_id = contoso["automation_service_principal_id"]
    fresh_lab.exchange_add_permission("contoso", "ce-sales", sp_id, ["FullAccess"], inherited=True)
    fresh_lab.exchange_add_permission("contoso", "ce-billing", sp_id, ["FullAccess"], deny=True)
    sales = exo.ok("Get-MailboxPermission", {"Identity": "ce-sales", "User": sp_id})
    assert [(e["AccessRights"], e["IsInherited"], e["Deny"]) for e in sales] == [(["FullAccess"], True, False)]
    billing = exo.ok("Get-MailboxPermission", {"Identity": "ce-billing", "User": sp_id})
    assert [(e["AccessRights"], e["IsInherited"], e["Deny"]) for e in billing] == [(["FullAccess"], False, True)]
    # An explicit grant next to the inherited one is allowed; removing the inherited one is not possible.
    exo.ok("Add-MailboxPermission", {"Identity": "ce-sales", "User": sp_id, "AccessRights": ["FullAccess"]})
    assert len(exo.ok("Get-MailboxPermission", {"Identity": "ce-sales", "User": sp_id})) == 2


def test_removed_service_principal_leaves_orphaned_entries(fresh_lab, exo, registered, contoso):
    sp_id = contoso["automation_service_principal_id"]
    exo.ok("Add-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"]})
    exo.ok("Remove-ServicePrincipal", {"Identity": sp_id, "Confirm": False})
    exo.ok("New-ServicePrincipal", {"AppId": contoso["automation_client_id"], "ObjectId": sp_id})
    assert exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "User": sp_id}) == []  # a new SID: grant again
    orphans = [e for e in exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "IncludeUnresolvedPermissions": True})
               if e["User"].startswith("S-1-5-21-")]
    assert len(orphans) == 1 and orphans[0]["AccessRights"] == ["FullAccess"]


def test_authorization(fresh_lab, exo, contoso):
    no_token = exo.run("Get-Mailbox", token=False)
    assert no_token.status_code == 401 and 'client_id="00000002-0000-0ff1-ce00-000000000000"' in no_token.headers["WWW-Authenticate"]
    assert no_token.json()["error"]["code"] == "Unauthorized"
    expired = fresh_lab.mint_token("contoso", resource="https://outlook.office365.com", lifetime=-3600)
    assert exo.run("Get-Mailbox", token=expired).status_code == 401
    graph_token = fresh_lab.token("contoso")
    assert "Invalid audience" in exo.run("Get-Mailbox", token=graph_token).json()["error"]["message"]
    fabrikam = fresh_lab.token("fabrikam", resource="https://outlook.office365.com")
    other_tenant = exo.run("Get-Mailbox", token=fabrikam)
    assert other_tenant.status_code == 401 and "does not match the organization" in other_tenant.json()["error"]["message"]

    fresh_lab.revoke_directory_roles("contoso", "Exchange Administrator")
    no_role = exo.run("Get-Mailbox")
    assert no_role.status_code == 401
    assert no_role.json()["error"]["message"] == (
        "The role assigned to application %s isn't supported in this scenario. Please check online documentation for assigning "
        "correct Directory Roles to Azure AD Application for EXO App-Only Authentication." % contoso["automation_client_id"])
    fresh_lab.grant_directory_roles("contoso", "Global Reader")
    assert exo.run("Get-Mailbox").status_code == 200
    write = exo.run("New-ServicePrincipal", {"AppId": contoso["automation_client_id"], "ObjectId": contoso["automation_service_principal_id"]})
    assert write.status_code == 401 and write.json()["error"]["message"] == "User is not allowed to call New-ServicePrincipal"
    fresh_lab.grant_directory_roles("contoso", "Exchange Administrator")

    fresh_lab.revoke_app_roles("contoso", "Exchange.ManageAsApp", resource="exchange")
    assert exo.run("Get-Mailbox").status_code == 200  # the token issued before still carries the role
    stale = fresh_lab.token("contoso", resource="https://outlook.office365.com")
    refused = exo.run("Get-Mailbox", token=stale)
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "UnAuthorized"


def test_counters_split_read_and_write_cmdlets(fresh_lab, exo, registered, contoso):
    fresh_lab.reset_counters()
    exo.ok("Get-MailboxPermission", {"Identity": MAILBOX, "User": contoso["automation_service_principal_id"]})
    exo.ok("Get-ServicePrincipal")
    assert fresh_lab.writes("exchange") == 0 and fresh_lab.reads("exchange") == 2
    exo.ok("Add-MailboxPermission", {"Identity": MAILBOX, "User": contoso["automation_service_principal_id"], "AccessRights": ["FullAccess"]})
    assert fresh_lab.count("exchange", "POST", "InvokeCommand Add-MailboxPermission", kind="writes") == 1
    per_directory = fresh_lab.counters()["directories"][contoso["tenant_id"]]["exchange"]
    assert per_directory["reads"] == 2 and per_directory["writes"] == 1


def test_throttling_fault_has_retry_after(fresh_lab, exo):
    fresh_lab.fail_next("exchange", 429, path_regex="InvokeCommand", retry_after=2)
    throttled = exo.run("Get-Mailbox")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert exo.run("Get-Mailbox").status_code == 200
