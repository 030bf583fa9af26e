"""The brownfield world (python -m ceops_lab start --world brownfield): directories where the runbook was walked by
hand, other applications' objects beside them, the provenance tags of everything seeded, the write journal, the
foreign state, CE's login oracle, and the fault that answers instead of failing."""

import datetime
import json
import os
import subprocess
import sys

import pytest
import requests
import yaml
from ceops_lab import worlds
from ceops_lab.admin import LabError
from ceops_lab.cli import CliError, start_lab
from lab_helpers import Exchange, reason_of

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORLD = worlds.describe("brownfield")
with open(os.path.join(worlds.path("brownfield"), "seed.json"), encoding="utf-8") as _handle:
    SEED = json.load(_handle)
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
IMAP_ROLE = "5e5addcd-3e8d-4e90-baf5-964efab2b20a"
POP_ROLE = "cb842b43-da6e-4506-86fe-bb12199c656d"
SMTP_ROLE = "7146a1f0-8703-45b3-9eae-527a64c00995"
USER_READ = "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
MAIL_READ = "810c84a8-4a9e-49e6-bf7d-12d183f40d01"
EXO_SCOPE = "https://outlook.office365.com/.default"


def seeded_app(directory, key):
    entry = next(d for d in SEED["directories"] if d["name"] == directory)
    return next(a for a in entry["applications"] if a.get("key") == key)


def all_seeded_secrets():
    texts = [d["automation"]["client_secret"]["secretText"] for d in SEED["directories"]]
    texts += [c["secretText"] for d in SEED["directories"] for a in d.get("applications") or [] for c in a["password_credentials"]]
    return texts


# ----- callers ---------------------------------------------------------------------------------------------------------
class Graph:
    def __init__(self, lab, directory):
        self.lab = lab
        self.token = lab.token(directory)
        self.base = lab.graph_url + "/v1.0"

    def call(self, method, path, body=None, headers=None):
        all_headers = dict(headers or {}, Authorization="Bearer " + self.token)
        return requests.request(method, self.base + path, json=body, headers=all_headers, verify=self.lab.ca_file, timeout=10)

    def ok(self, method, path, body=None, status=200):
        response = self.call(method, path, body)
        assert response.status_code == status, response.text
        return response.json() if response.content else None


def exchange(lab, directory):
    details = lab.directory(directory)
    return Exchange(lab, lab.token(directory, resource="https://outlook.office365.com"), details["tenant_id"])


def portal(lab, deployment, tenant=None):
    """(base URL, headers) of a deployment's Portal API as its deployment administrator or a tenant administrator."""
    entry = lab.vars["lab_ce_deployments"][deployment]
    token = entry["tenants"][tenant]["admin_token"] if tenant else entry["admin_token"]
    return entry["url"] + "/api/v1", {"Authorization": "Bearer " + token}


def ce_call(lab, method, deployment, path, body=None, tenant=None, headers=None):
    base, auth = portal(lab, deployment, tenant)
    return requests.request(method, base + path, json=body, headers=dict(auth, **(headers or {})), verify=lab.ca_file, timeout=10)


def batch_update(lab, deployment):
    lab.ce_settings(deployment, update_seconds=0)
    response = ce_call(lab, "POST", deployment, "/server-updates")
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture
def bf(fresh_brownfield_lab):
    return fresh_brownfield_lab


# ----- the world -------------------------------------------------------------------------------------------------------
def test_world_is_the_brownfield_one(bf):
    assert bf.vars["lab_world"] == "brownfield" and bf.info["world"] == "brownfield"
    assert set(bf.vars["lab_directories"]) == {"adatum", "bellows", "corvid", "dunmore", "eastwind", "fenwick"}
    assert {name: set(d["tenants"]) for name, d in bf.vars["lab_ce_deployments"].items()} == {
        "atlas": {"alpine", "birch", "cobalt", "dune", "ember"}, "beacon": {"fjord", "glade", "harbor", "islet"}, "relic": {"jasper"}}
    assert {name: d["version"] for name, d in bf.vars["lab_ce_deployments"].items()} == {"atlas": "7.4.4", "beacon": "7.6.0", "relic": "7.4.3"}
    assert set(WORLD["tenants"]) == {t for d in bf.vars["lab_ce_deployments"].values() for t in d["tenants"]}


def test_hand_made_apps_look_as_the_entra_admin_center_made_them(bf):
    now = datetime.datetime.now(datetime.timezone.utc)
    found = {}
    for directory in ("adatum", "bellows", "corvid", "dunmore", "eastwind", "fenwick"):
        graph = Graph(bf, directory)
        found[directory] = graph.ok("GET", "/applications?$filter=displayName eq 'CE Email'")["value"]
    assert {d: len(apps) for d, apps in found.items()} == {"adatum": 1, "bellows": 1, "corvid": 2, "dunmore": 1, "eastwind": 0, "fenwick": 0}
    for directory, app in ((d, a) for d, apps in found.items() for a in apps):
        assert app["uniqueName"] is None and app["signInAudience"] == "AzureADMyOrg"
        created = datetime.datetime.fromisoformat(app["createdDateTime"].replace("Z", "+00:00"))
        assert now - created > datetime.timedelta(days=300), app["createdDateTime"]
        requested = {(r["resourceAppId"], a["id"], a["type"]) for r in app["requiredResourceAccess"] for a in r["resourceAccess"]}
        runbook = {(GRAPH_APP_ID, USER_READ, "Scope"), (EXCHANGE_APP_ID, IMAP_ROLE, "Role"), (EXCHANGE_APP_ID, POP_ROLE, "Role")}
        # bellows' admin also followed another guide: Graph Mail.Read, requested and consented.
        assert requested == (runbook | {(GRAPH_APP_ID, MAIL_READ, "Role")} if directory == "bellows" else runbook)
    adatum = found["adatum"][0]
    assert sorted(c["displayName"] for c in adatum["passwordCredentials"]) == ["ce 2023", "ce 2025"]
    corvid = sorted(found["corvid"], key=lambda a: a["createdDateTime"])
    assert corvid[0]["createdDateTime"] < corvid[1]["createdDateTime"]
    assert [len(a["passwordCredentials"]) for a in corvid] == [1, 0] and found["dunmore"][0]["passwordCredentials"] == []

    # Consent: the first corvid app and adatum's have IMAP + POP; the second corvid app and dunmore's have none.
    def consent(directory, app):
        graph = Graph(bf, directory)
        sp = graph.ok("GET", "/servicePrincipals(appId='%s')" % app["appId"])
        assert sp["tags"] == ["WindowsAzureActiveDirectoryIntegratedApp"]
        return sorted(a["appRoleId"] for a in graph.ok("GET", "/servicePrincipals/%s/appRoleAssignments" % sp["id"])["value"])
    assert consent("adatum", adatum) == sorted([IMAP_ROLE, POP_ROLE]) == consent("corvid", corvid[0])
    assert consent("bellows", found["bellows"][0]) == sorted([IMAP_ROLE, POP_ROLE, MAIL_READ])
    assert consent("corvid", corvid[1]) == [] == consent("dunmore", found["dunmore"][0])


def test_exchange_holds_the_runbooks_registrations_right_and_wrong(bf):
    bellows_app = seeded_app("bellows", "ce-email")
    exo = exchange(bf, "bellows")
    registered = exo.ok("Get-ServicePrincipal", {"Identity": bellows_app["app_id"]})
    # The classic mistake: ObjectId is the application object's id, not the service principal's.
    assert registered[0]["ObjectId"] == bellows_app["application_object_id"] != bellows_app["service_principal"]["id"]
    grants = exo.ok("Get-MailboxPermission", {"Identity": "ce-admissions@bellows.onmicrosoft.com", "User": registered[0]["Identity"]})
    assert grants[0]["AccessRights"] == ["FullAccess"] and grants[0]["IsInherited"] is False
    # New-ServicePrincipal checks the pair today: the same mistake made now is refused.
    again = exo.run("New-ServicePrincipal", {"AppId": bellows_app["app_id"], "ServiceId": bellows_app["application_object_id"]})
    assert again.status_code == 400 and "couldn't be found in Microsoft Entra ID" in reason_of(again.json())
    archiver = seeded_app("bellows", "archiver")
    shared = exo.ok("Get-MailboxPermission", {"Identity": "ce-helpdesk@bellows.onmicrosoft.com"})
    assert {e["User"] for e in shared if not e["IsInherited"]} == {"NT AUTHORITY\\SELF", bellows_app["application_object_id"],
                                                                   archiver["service_principal"]["id"]}


def test_policy_and_missing_exchange_role(bf):
    graph = Graph(bf, "eastwind")
    app = graph.ok("POST", "/applications", {"displayName": "probe"}, status=201)
    refused = graph.call("POST", "/applications/%s/addPassword" % app["id"], {"passwordCredential": {"displayName": "x"}})
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert "180" not in error["message"] and "policy '" in error["message"]  # names the policy, not the number of days
    short = graph.ok("POST", "/applications/%s/addPassword" % app["id"], {"passwordCredential": {
        "endDateTime": (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=179)).isoformat()}})
    assert short["keyId"]
    assert Graph(bf, "fenwick").ok("GET", "/applications?$top=1")["value"]
    denied = exchange(bf, "fenwick").run("Get-Mailbox", {})
    assert denied.status_code == 401 and "isn't supported in this scenario" in denied.json()["error"]["message"]


def test_ce_objects_made_by_hand(bf):
    adatum_app = seeded_app("adatum", "ce-email")
    settings = ce_call(bf, "GET", "atlas", "/tenants/alpine/oauth-settings", tenant="alpine").json()["items"]
    assert [(s["name"], s["client_id"], s["client_secret_set"]) for s in settings] == [("O365 OAuth", adatum_app["app_id"], True)]
    assert settings[0]["client_secret_updated_at"] < datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    gateways = ce_call(bf, "GET", "atlas", "/email-gateways").json()["items"]
    office = next(g for g in gateways if g["name"] == "Office 365")
    assert office["inbound"] == {"host": "outlook.office365.com", "port": 993, "security": "ssl", "protocol": "imap"}
    assert office["outbound"] == {"host": "smtp.office365.com", "port": 587, "security": "starttls"}
    connections = ce_call(bf, "GET", "atlas", "/tenants/alpine/email-connections").json()["items"]
    assert {(c["name"], c["gateway_id"] == office["id"], c["use_oauth_receive"]) for c in connections} == {
        ("Office 365", True, True), ("On-prem archive", False, False)}
    assert ce_call(bf, "GET", "relic", "/info").json()["capabilities"] == []
    assert bf.ce_state("atlas")["pending"] == {"pending": False, "changes": []}  # all of it applied


# ----- provenance ------------------------------------------------------------------------------------------------------
def test_provenance_tags(bf):
    tags = {(t["service"], t["scope"], t["kind"], t["id"]): t["provenance"] for t in bf.provenance()}
    adatum, hr = seeded_app("adatum", "ce-email"), seeded_app("adatum", "hr-connector")
    expected = {
        ("graph", "adatum", "application", adatum["application_object_id"]): "hand-made",
        ("graph", "adatum", "service_principal", adatum["service_principal"]["id"]): "hand-made",
        ("graph", "adatum", "application", hr["application_object_id"]): "foreign",
        ("graph", "adatum", "service_principal", hr["service_principal"]["id"]): "foreign",
        ("graph", "adatum", "password_credential", adatum["password_credentials"][1]["keyId"]): "foreign",  # the admin's secret
        ("graph", "adatum", "required_resource_access", "%s|%s|%s|Scope" % (adatum["application_object_id"], GRAPH_APP_ID, USER_READ)): "foreign",
        ("graph", "adatum", "required_resource_access", "%s|%s|%s|Role" % (adatum["application_object_id"], EXCHANGE_APP_ID, IMAP_ROLE)): "hand-made",
        ("exchange", "adatum", "exchange_service_principal", adatum["service_principal"]["id"]): "hand-made",
        ("exchange", "adatum", "exchange_service_principal", hr["service_principal"]["id"]): "foreign",
        ("ce", "atlas", "ce_email_gateway", "egw_a71f03c9e2d4"): "hand-made",
        ("ce", "atlas", "ce_email_gateway", "egw_5c2e8b1fa063"): "foreign",
        ("ce", "atlas/alpine", "ce_oauth_settings", "oas_1a2b3c4d5e6f"): "hand-made",
        ("ce", "atlas/alpine", "ce_email_connection", "ecn_0f1e2d3c4b5a"): "hand-made",
        ("ce", "atlas/alpine", "ce_email_connection", "ecn_9a8b7c6d5e4f"): "foreign",
        ("ce", "beacon/glade", "ce_email_connection", "ecn_5a6b7c8d9e0f"): "foreign",
    }
    assert {key: tags.get(key) for key in expected} == expected
    consent = {k: v for k, v in tags.items() if k[:3] == ("graph", "adatum", "app_role_assignment")}
    assert sorted(consent.values()) == ["foreign"] * 5 + ["hand-made"] * 2  # automation 3 + HR 2 foreign, CE Email's IMAP + POP
    bellows = {k[3]: v for k, v in tags.items() if k[:3] == ("graph", "bellows", "app_role_assignment")}
    ce_email_sp = seeded_app("bellows", "ce-email")["service_principal"]["id"]
    graph = Graph(bf, "bellows")
    grants = graph.ok("GET", "/servicePrincipals/%s/appRoleAssignments" % ce_email_sp)["value"]
    assert sorted((g["appRoleId"], bellows[g["id"]]) for g in grants) == sorted(
        [(IMAP_ROLE, "hand-made"), (POP_ROLE, "hand-made"), (MAIL_READ, "foreign")])  # consent beyond the runbook is foreign
    hand_made_grants = {k[3].split("|")[0] for k, v in tags.items() if k[2] == "mailbox_permission" and k[1] == "adatum" and v == "hand-made"}
    assert hand_made_grants == {"ce-%s@adatum.onmicrosoft.com" % m for m in ("support", "sales", "billing", "orders")}
    # Everything seeded carries a tag: automation identities, resource service principals, default mailbox permissions.
    automation = bf.directory("adatum")["automation_application_id"]
    assert tags[("graph", "adatum", "application", automation)] == "foreign"
    assert set(tags.values()) == {"hand-made", "foreign"}


def test_provenance_never_leaves_the_lab_through_a_service(bf):
    adatum = seeded_app("adatum", "ce-email")
    graph = Graph(bf, "adatum")
    exo = exchange(bf, "adatum")
    answers = [graph.call("GET", "/applications").text, graph.call("GET", "/servicePrincipals").text,
               graph.call("GET", "/servicePrincipals/%s/appRoleAssignments" % adatum["service_principal"]["id"]).text,
               exo.run("Get-ServicePrincipal").text, exo.run("Get-MailboxPermission", {"Identity": "ce-support@adatum.onmicrosoft.com"}).text,
               ce_call(bf, "GET", "atlas", "/email-gateways").text, ce_call(bf, "GET", "atlas", "/tenants/alpine/oauth-settings").text,
               ce_call(bf, "GET", "atlas", "/tenants/alpine/email-connections").text, json.dumps(bf.state()), json.dumps(bf.state("ce"))]
    for text in answers:
        assert "provenance" not in text and "hand-made" not in text and "foreign" not in text
    dumped = json.dumps([bf.provenance(), bf.foreign_state(), bf.ce_login_oracle("atlas", "alpine"), bf.state()])
    assert not [s for s in all_seeded_secrets() if s in dumped]


# ----- the journal and the foreign state -------------------------------------------------------------------------------------
def test_journal_records_writes_with_their_objects(bf):
    adatum = seeded_app("adatum", "ce-email")
    tenant_id = bf.directory("adatum")["tenant_id"]
    graph = Graph(bf, "adatum")
    graph.ok("GET", "/applications")
    bf.token("adatum", resource="https://outlook.office365.com")
    assert bf.journal() == []  # reads and token requests are not writes

    secret = graph.ok("POST", "/applications/%s/addPassword" % adatum["application_object_id"], {"passwordCredential": {"displayName": "ours"}})
    entry, = bf.journal()
    assert {k: entry[k] for k in ("service", "directory", "method", "endpoint", "status", "faulted")} == {
        "service": "graph", "directory": tenant_id, "method": "POST", "endpoint": "POST /v1.0/applications/{id}/addPassword", "status": 200,
        "faulted": False}
    assert entry["objects"] == [
        {"kind": "application", "id": adatum["application_object_id"], "provenance": "hand-made", "action": "changed", "fields": ["passwordCredentials"]},
        {"kind": "password_credential", "id": secret["keyId"], "provenance": None, "action": "created", "application": adatum["application_object_id"]}]

    exo = exchange(bf, "adatum")
    exo.ok("Add-MailboxPermission", {"Identity": "ce-info@adatum.onmicrosoft.com", "User": adatum["service_principal"]["id"],
                                     "AccessRights": ["FullAccess"]})
    duplicate = exo.run("Add-MailboxPermission", {"Identity": "ce-info@adatum.onmicrosoft.com", "User": adatum["service_principal"]["id"],
                                                  "AccessRights": ["FullAccess"]})
    assert duplicate.status_code == 400
    exo.ok("Get-MailboxPermission", {"Identity": "ce-info@adatum.onmicrosoft.com"})
    added, refused = bf.journal(since=entry["seq"])
    key = "ce-info@adatum.onmicrosoft.com|%s|Allow" % adatum["service_principal"]["id"]
    assert (added["endpoint"], added["status"], added["objects"]) == (
        "POST InvokeCommand Add-MailboxPermission", 200, [{"kind": "mailbox_permission", "id": key, "provenance": None, "action": "created"}])
    assert (refused["status"], refused["objects"]) == (400, [{"kind": "mailbox_permission", "id": key, "provenance": None, "action": "addressed"}])

    # A PUT that changes only the client id: the journal names the field (the secret was not sent, so CE keeps it).
    settings = ce_call(bf, "GET", "atlas", "/tenants/alpine/oauth-settings/oas_1a2b3c4d5e6f").json()
    body = {k: settings[k] for k in ("name", "scopes", "token_endpoint_url")}
    body["client_id"] = seeded_app("bellows", "ce-email")["app_id"]
    assert ce_call(bf, "PUT", "atlas", "/tenants/alpine/oauth-settings/oas_1a2b3c4d5e6f", body, tenant="alpine",
                   headers={"If-Match": '"%d"' % settings["revision"]}).status_code == 200
    put = bf.journal(since=refused["seq"])[0]
    assert {k: put[k] for k in ("service", "directory", "deployment", "ce_tenant", "endpoint", "status")} == {
        "service": "ce", "directory": None, "deployment": "atlas", "ce_tenant": "alpine",
        "endpoint": "PUT /atlas/api/v1/tenants/{tenant}/oauth-settings/{id}", "status": 200}
    assert put["objects"] == [{"kind": "ce_oauth_settings", "id": "oas_1a2b3c4d5e6f", "provenance": "hand-made", "action": "changed",
                               "fields": ["client_id"]}]
    assert bf.foreign_writes() == []
    bf.reset_counters()
    assert bf.journal() == []


def test_journal_names_the_exchange_service_principal_a_cmdlet_changed(bf):
    adatum = seeded_app("adatum", "ce-email")
    exo = exchange(bf, "adatum")
    exo.ok("Set-ServicePrincipal", {"Identity": adatum["service_principal"]["id"], "DisplayName": "CE Email (renamed)"})
    entry, = bf.journal()
    assert entry["objects"] == [{"kind": "exchange_service_principal", "id": adatum["service_principal"]["id"], "provenance": "hand-made",
                                 "action": "changed", "fields": ["DisplayName"], "app_id": adatum["app_id"]}]


def test_foreign_state_and_foreign_writes(bf):
    adatum, hr = seeded_app("adatum", "ce-email"), seeded_app("adatum", "hr-connector")
    graph = Graph(bf, "adatum")
    before = bf.foreign_state()
    assert before["graph"]["adatum"]["application"][hr["application_object_id"]]["displayName"] == "Adatum HR Connector"

    # Adopting the hand-made app: re-send its permissions (the admin center's User.Read kept) plus one more, and consent.
    app = graph.ok("GET", "/applications/%s" % adatum["application_object_id"])
    requested = app["requiredResourceAccess"]
    exo_entry = next(r for r in requested if r["resourceAppId"] == EXCHANGE_APP_ID)
    exo_entry["resourceAccess"].append({"id": SMTP_ROLE, "type": "Role"})
    graph.ok("PATCH", "/applications/%s" % adatum["application_object_id"], {"requiredResourceAccess": requested}, status=204)
    assert bf.foreign_state() == before and bf.foreign_writes() == []
    patch, = bf.journal()
    assert [o for o in patch["objects"] if o["kind"] == "required_resource_access"] == [
        {"kind": "required_resource_access", "id": "%s|%s|%s|Role" % (adatum["application_object_id"], EXCHANGE_APP_ID, SMTP_ROLE),
         "provenance": None, "action": "created", "application": adatum["application_object_id"]}]

    # Removing the admin's own secret changes the foreign state; the journal says which write did it.
    old_secret = adatum["password_credentials"][0]["keyId"]
    graph.ok("POST", "/applications/%s/removePassword" % adatum["application_object_id"], {"keyId": old_secret}, status=204)
    after = bf.foreign_state()
    assert old_secret in before["graph"]["adatum"]["password_credential"] and old_secret not in after["graph"]["adatum"]["password_credential"]
    after["graph"]["adatum"]["password_credential"][old_secret] = before["graph"]["adatum"]["password_credential"][old_secret]
    assert after == before  # nothing else moved
    removal, = bf.foreign_writes()
    assert removal["endpoint"] == "POST /v1.0/applications/{id}/removePassword"
    assert {"kind": "password_credential", "id": old_secret, "provenance": "foreign", "action": "deleted",
            "application": adatum["application_object_id"]} in removal["objects"]

    # Dropping User.Read (a foreign part of a hand-made app) and another principal's mailbox permission show too.
    without_user_read = [r for r in requested if r["resourceAppId"] != GRAPH_APP_ID]
    graph.ok("PATCH", "/applications/%s" % adatum["application_object_id"], {"requiredResourceAccess": without_user_read}, status=204)
    exchange(bf, "adatum").ok("Remove-MailboxPermission", {"Identity": "ce-support@adatum.onmicrosoft.com", "User": hr["service_principal"]["id"],
                                                           "AccessRights": ["FullAccess"], "Confirm": False})
    kinds = [{o["kind"] for o in e["objects"] if o["provenance"] == "foreign"} for e in bf.foreign_writes()]
    assert kinds == [{"password_credential"}, {"required_resource_access"}, {"mailbox_permission"}]
    final = bf.foreign_state()
    assert "%s|%s|%s|Scope" % (adatum["application_object_id"], GRAPH_APP_ID, USER_READ) not in final["graph"]["adatum"]["required_resource_access"]
    support = [k for k in final["exchange"]["adatum"]["mailbox_permission"] if k.startswith("ce-support@")]
    assert len(support) == len([k for k in before["exchange"]["adatum"]["mailbox_permission"] if k.startswith("ce-support@")]) - 1


def test_a_refused_write_to_a_foreign_object_is_still_a_foreign_write(bf):
    response = ce_call(bf, "PUT", "atlas", "/tenants/alpine/email-connections/ecn_9a8b7c6d5e4f",
                       {"name": "On-prem archive", "gateway_id": "egw_5c2e8b1fa063"}, headers={"If-Match": '"7"'})
    assert response.status_code == 412
    entry, = bf.foreign_writes()
    assert entry["status"] == 412 and entry["objects"] == [
        {"kind": "ce_email_connection", "id": "ecn_9a8b7c6d5e4f", "provenance": "foreign", "action": "addressed"}]


# ----- CE's truth --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tenant", sorted(WORLD["tenants"]))
def test_oracle_on_the_seeded_world(bf, tenant):
    expected = WORLD["tenants"][tenant]
    verdict = bf.ce_login_oracle(expected["deployment"], tenant)
    assert (verdict["ok"], verdict["causes"][0]["code"] if verdict["causes"] else None) == (
        expected["oracle_before"]["ok"], expected["oracle_before"]["cause"]), verdict["causes"]


def test_oracle_says_whose_secret_ce_holds(bf):
    adatum = seeded_app("adatum", "ce-email")
    alpine = bf.ce_login_oracle("atlas", "alpine")
    connection = next(c for c in alpine["connections"] if c["exchange_online"])
    assert connection["ok"] and [m["ok"] for m in connection["mailboxes"]] == [True, True]
    owner, = connection["secret"]["owners"]
    assert (owner["directory"], owner["app_id"], owner["key_id"], owner["display_name"], owner["current"], owner["provenance"]) == (
        "adatum", adatum["app_id"], adatum["password_credentials"][1]["keyId"], "ce 2025", True, "foreign")
    assert connection["secret"]["belongs_to_client_id"] and connection["exchange_service_principal"] == [
        {"identity": adatum["service_principal"]["id"], "object_id": adatum["service_principal"]["id"], "object_id_is": "service_principal"}]
    assert connection["token"]["roles"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    other = next(c for c in alpine["connections"] if not c["exchange_online"])
    assert other["causes"][0]["code"] == "oauth_receive_off" and not other["ok"]  # the foreign one does not count against alpine

    ember = bf.ce_login_oracle("atlas", "ember")["connections"][0]
    first = seeded_app("corvid", "ce-email-2022")
    assert ember["oauth_settings"]["client_id"] == seeded_app("corvid", "ce-email-2023")["app_id"]
    assert [o["app_id"] for o in ember["secret"]["owners"]] == [first["app_id"]] and not ember["secret"]["belongs_to_client_id"]
    birch = bf.ce_login_oracle("atlas", "birch")["connections"][0]
    assert [(o["display_name"], o["current"]) for o in birch["secret"]["owners"]] == [("ce 2023", False)]
    cobalt = bf.ce_login_oracle("atlas", "cobalt")["connections"][0]
    assert cobalt["exchange_service_principal"][0]["object_id_is"] == "application"
    assert {m["cause"] for m in cobalt["mailboxes"]} == {"exchange_sp_wrong_object_id"}
    assert bf.token("adatum")  # the oracle asked Entra without counting a token
    assert not [k for k in bf.counters()["tokens"] if adatum["app_id"] in k]


def test_oracle_names_missing_consent_and_missing_full_access(bf):
    adatum = seeded_app("adatum", "ce-email")
    exchange(bf, "adatum").ok("Remove-MailboxPermission", {"Identity": "ce-sales@adatum.onmicrosoft.com", "User": adatum["service_principal"]["id"],
                                                           "AccessRights": ["FullAccess"], "Confirm": False})
    verdict = bf.ce_login_oracle("atlas", "alpine")
    assert not verdict["ok"] and [c["code"] for c in verdict["causes"]] == ["no_full_access"]
    mailboxes = {m["address"]: (m["ok"], m["cause"]) for m in verdict["connections"][0]["mailboxes"]}
    assert mailboxes == {"ce-support@adatum.onmicrosoft.com": (True, None), "ce-sales@adatum.onmicrosoft.com": (False, "no_full_access")}
    bf.revoke_app_roles("adatum", "IMAP.AccessAsApp", "POP.AccessAsApp", resource="exchange", principal=adatum["service_principal"]["id"])
    assert [c["code"] for c in bf.ce_login_oracle("atlas", "alpine")["causes"]] == ["no_consent"]


def test_oracle_reads_the_applied_configuration_and_a_repair_makes_it_ok(bf):
    bellows = seeded_app("bellows", "ce-email")
    exo = exchange(bf, "bellows")
    wrong = bellows["application_object_id"]
    exo.ok("Remove-ServicePrincipal", {"Identity": wrong, "Confirm": False})
    exo.ok("New-ServicePrincipal", {"AppId": bellows["app_id"], "ObjectId": bellows["service_principal"]["id"]})
    for mailbox in ("ce-admissions@bellows.onmicrosoft.com", "ce-helpdesk@bellows.onmicrosoft.com"):
        exo.ok("Add-MailboxPermission", {"Identity": mailbox, "User": bellows["service_principal"]["id"], "AccessRights": ["FullAccess"]})
    assert bf.ce_login_oracle("atlas", "cobalt")["ok"] is True

    # A secret CE is configured with but has not applied yet changes nothing until a batch update applies it.
    graph = Graph(bf, "bellows")
    secret = graph.ok("POST", "/applications/%s/addPassword" % bellows["application_object_id"], {"passwordCredential": {"displayName": "new"}})
    settings = ce_call(bf, "GET", "atlas", "/tenants/cobalt/oauth-settings/oas_2c3d4e5f6a7b").json()
    body = dict({k: settings[k] for k in ("name", "client_id", "scopes", "token_endpoint_url")}, client_secret="not-a-secret-of-any-app")
    assert ce_call(bf, "PUT", "atlas", "/tenants/cobalt/oauth-settings/oas_2c3d4e5f6a7b", body).status_code == 200
    assert bf.ce_login_oracle("atlas", "cobalt")["ok"] is True
    update = batch_update(bf, "atlas")
    assert bf.ce_state("atlas")["applied"]["update_id"] == update["id"]
    assert [c["code"] for c in bf.ce_login_oracle("atlas", "cobalt")["causes"]] == ["secret_unknown"]
    body["client_secret"] = secret["secretText"]
    ce_call(bf, "PUT", "atlas", "/tenants/cobalt/oauth-settings/oas_2c3d4e5f6a7b", dict(body))
    batch_update(bf, "atlas")
    verdict = bf.ce_login_oracle("atlas", "cobalt")
    assert verdict["ok"] and verdict["connections"][0]["secret"]["owners"][0]["key_id"] == secret["keyId"]
    assert secret["secretText"] not in json.dumps(verdict)


def test_oracle_for_unknown_tenants(bf):
    with pytest.raises(LabError, match="404"):
        bf.ce_login_oracle("atlas", "nobody")
    with pytest.raises(LabError, match="404"):
        bf.ce_login_oracle("nowhere", "alpine")


# ----- the fault that answers --------------------------------------------------------------------------------------------------
def test_a_lookup_can_be_made_to_answer_another_object(bf):
    bellows, archiver = seeded_app("bellows", "ce-email"), seeded_app("bellows", "archiver")
    exo = exchange(bf, "bellows")
    theirs = exo.ok("Get-ServicePrincipal", {"Identity": archiver["app_id"]})
    bf.fail_next("exchange", 200, method="POST", body_regex=r'"CmdletName": "Get-ServicePrincipal".*"Identity": "%s"' % bellows["app_id"],
                 body={"value": theirs})
    # Another lookup passes through to the lab; the matching one gets the archiver's service principal.
    assert exo.ok("Get-ServicePrincipal", {"Identity": archiver["app_id"]}) == theirs
    answered = exo.run("Get-ServicePrincipal", {"Identity": bellows["app_id"]})
    assert answered.status_code == 200 and answered.json() == {"value": theirs} and "Retry-After" not in answered.headers
    assert exo.ok("Get-ServicePrincipal", {"Identity": bellows["app_id"]})[0]["AppId"] == bellows["app_id"]  # one-shot
    assert bf.counters()["services"]["exchange"]["faults"] == {"POST InvokeCommand Get-ServicePrincipal": 1}
    with pytest.raises(LabError, match="status"):
        bf.fail_next("exchange", 700)
    with pytest.raises(LabError, match="body_regex"):
        bf.fail_next("exchange", 200, body_regex="(")


def test_get_service_principal_identity_is_any_unique_value(bf):
    archiver = seeded_app("bellows", "archiver")
    exo = exchange(bf, "bellows")
    registered, = exo.ok("Get-ServicePrincipal", {"Identity": archiver["app_id"]})
    for identity in ("Name", "DistinguishedName", "ExchangeObjectId", "AppId", "ObjectId", "Identity"):
        assert exo.ok("Get-ServicePrincipal", {"Identity": registered[identity]}) == [registered], identity
    missing = exo.run("Get-ServicePrincipal", {"Identity": seeded_app("dunmore", "ce-email")["app_id"]})
    assert missing.status_code == 404
    assert "ManagementObjectNotFoundException" in missing.json()["error"]["details"][0]["message"]


# ----- starting it, and the inventory ----------------------------------------------------------------------------------------
def test_world_names_are_checked(tmp_path):
    with pytest.raises(CliError, match="no lab world 'nowhere'"):
        start_lab(str(tmp_path), world="nowhere")
    with pytest.raises(CliError, match="either --fleet or --world"):
        start_lab(str(tmp_path), world="brownfield", fleet_dir=str(tmp_path))
    assert "brownfield" in worlds.names() and not (tmp_path / "lab.pid").exists()


def test_inventory_matches_the_world(brownfield_lab):
    with open(os.path.join(REPO, "inventories", "brownfield", "hosts.yml"), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["children"]["ce_tenants"]["children"]
    with open(os.path.join(REPO, "inventories", "brownfield", "group_vars", "all", "microsoft.yml"), encoding="utf-8") as handle:
        microsoft = yaml.safe_load(handle)
    directories = {d["name"]: d["tenant_id"] for d in SEED["directories"]}
    assert set(microsoft["ms_credentials"]) == set(directories.values()) and "ms_apps" not in microsoft
    seen = {}
    for group, members in hosts.items():
        for name, host in members["hosts"].items():
            seen[name] = (group, host["ms_tenant_id"], host["ce_mailboxes"])
    deployments = brownfield_lab.vars["lab_ce_deployments"]
    expected = {t: ("ce_deployment_" + d, directories[WORLD["tenants"][t]["directory"]], entry["mailboxes"])
                for d, dep in deployments.items() for t, entry in dep["tenants"].items()}
    assert seen == expected
    # The inventory's variables resolve against the running brownfield lab.
    env = dict(os.environ, CEOPS_LAB_DIR=brownfield_lab.state_dir, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")
    template = "{{ ce_url }}|{{ ms_credentials[ms_tenant_id].client_id }}|{{ ms_endpoints.graph_endpoint }}"
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "-i", "inventories/brownfield", "islet:jasper",
                             "-m", "ansible.builtin.debug", "-a", "msg=" + template, "-o"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    fenwick = brownfield_lab.directory("fenwick")["automation_client_id"]
    assert "%s/beacon|%s|%s" % (brownfield_lab.url("ce"), fenwick, brownfield_lab.graph_url) in result.stdout
    assert "%s/relic|" % brownfield_lab.url("ce") in result.stdout
