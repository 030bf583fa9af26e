"""The lab's Graph under simultaneous writes, as Entra answers them (reference/microsoft-facts.md): an upsert by
uniqueName creates once and updates after, a second service principal for one app is a 409, a second identical app
role assignment is a 400. Requests are released together by a barrier, several at once on the lab's threads."""

import concurrent.futures
import threading

EXO = "00000002-0000-0ff1-ce00-000000000000"
IMAP = "5e5addcd-3e8d-4e90-baf5-964efab2b20a"
RACERS = 4


def race(fresh_lab, graph, request):
    """``request(caller)`` from RACERS callers (each a Graph caller like the fixture's) at the same moment -> responses."""
    barrier = threading.Barrier(RACERS, timeout=30)
    callers = [type(graph)(fresh_lab, fresh_lab.token("contoso")) for _ in range(RACERS)]

    def run(caller):
        barrier.wait()
        return request(caller)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=RACERS) as pool:
            return list(pool.map(run, callers))
    finally:
        for caller in callers:
            caller.session.close()


def test_simultaneous_creates_make_one_app_one_service_principal_and_one_assignment(fresh_lab, graph):
    path = "/applications(uniqueName='ce-email')"
    upserts = race(fresh_lab, graph, lambda g: g.patch(path, {"displayName": "CE Email"}, headers={"Prefer": "create-if-missing"}))
    assert sorted(r.status_code for r in upserts) == [201] + [204] * (RACERS - 1)
    apps = graph.get("/applications?$filter=displayName eq 'CE Email'").json()["value"]
    assert len(apps) == 1

    creates = race(fresh_lab, graph, lambda g: g.post("/servicePrincipals", {"appId": apps[0]["appId"]}))
    assert sorted(r.status_code for r in creates) == [201] + [409] * (RACERS - 1)
    assert all(r.json()["error"]["code"] == "Request_MultipleObjectsWithSameKeyValue" for r in creates if r.status_code == 409)
    sp = next(r.json() for r in creates if r.status_code == 201)

    exchange = graph.resource_sp(EXO)
    body = {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP}
    grants = race(fresh_lab, graph, lambda g: g.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"], body))
    assert sorted(r.status_code for r in grants) == [201] + [400] * (RACERS - 1)
    assert all(r.json()["error"]["message"] == "Permission being assigned already exists on the object" for r in grants if r.status_code == 400)
    assignments = graph.get("/servicePrincipals/%s/appRoleAssignments" % sp["id"]).json()["value"]
    assert [a["appRoleId"] for a in assignments] == [IMAP]
