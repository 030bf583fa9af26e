"""Generated lab fleets (ceops_lab.fleet): the shape the benchmark relies on, and a lab seeded with one."""

import os

import pytest
from ceops_lab import fleet
from ceops_lab.admin import LabAdmin
from ceops_lab.cli import main, start_lab, stop_lab


def test_a_fleet_has_the_asked_shape_and_every_mailbox_once():
    world, ce, description = fleet.generate(tenants=20, deployments=4, directories=4, mailboxes=3, seed=5)
    assert len(description["tenants"]) == 20 and len(world["directories"]) == 4 and len(ce["deployments"]) == 4
    by_name = dict((d["name"], d) for d in world["directories"])
    addresses = [m for t in description["tenants"] for m in t["mailboxes"]]
    assert len(addresses) == len(set(addresses)) == 60
    for tenant in description["tenants"]:
        directory = by_name[tenant["directory"]]
        assert all(m.endswith("@" + directory["domain"]) and m in directory["mailboxes"] for m in tenant["mailboxes"])
    # Each directory holds exactly its CE tenants' mailboxes, and serves CE tenants of more than one deployment.
    for name, directory in by_name.items():
        tenants = [t for t in description["tenants"] if t["directory"] == name]
        assert sorted(directory["mailboxes"]) == sorted(m for t in tenants for m in t["mailboxes"])
        assert len(set(t["deployment"] for t in tenants)) > 1
    assert sum(len(d["tenants"]) for d in ce["deployments"]) == 20
    ids = [d["tenant_id"] for d in world["directories"]] + [d["automation"]["app_id"] for d in world["directories"]]
    assert len(set(ids)) == len(ids)


def test_the_same_seed_gives_the_same_ids_and_another_seed_others():
    first, second, other = (fleet.generate(tenants=10, directories=2, seed=s)[0] for s in (1, 1, 2))
    assert first == second
    assert first["directories"][0]["tenant_id"] != other["directories"][0]["tenant_id"]


def test_impossible_fleets_are_refused():
    with pytest.raises(ValueError, match="at least one CE tenant per directory"):
        fleet.generate(tenants=3, directories=4)
    with pytest.raises(ValueError, match="at least 1"):
        fleet.generate(tenants=3, mailboxes=0)


def test_a_lab_started_with_a_fleet_serves_it(tmp_path, capsys):
    seeds = tmp_path / "seeds"
    assert main(["fleet", "--tenants", "6", "--deployments", "2", "--directories", "2", "--out", str(seeds)]) == 0
    assert "fleet of 6 CE tenants on 2 CE deployments over 2 directories" in capsys.readouterr().out
    state_dir = str(tmp_path / "lab")
    start_lab(state_dir, fleet_dir=str(seeds))
    try:
        lab = LabAdmin(state_dir)
        description = fleet.load(str(seeds))
        assert sorted(lab.vars["lab_directories"]) == ["dir001", "dir002"]
        assert sorted(lab.vars["lab_ce_deployments"]) == ["ce1", "ce2"]
        # The generated automation identity gets a real token, and Exchange knows the generated mailboxes.
        assert lab.token("dir002")
        dir002 = [m for t in description["tenants"] if t["directory"] == "dir002" for m in t["mailboxes"]]
        assert sorted(m["PrimarySmtpAddress"] for m in lab.exchange_state("dir002")["mailboxes"]) == sorted(dir002)
        ce1 = lab.vars["lab_ce_deployments"]["ce1"]
        status, _, page = lab.request("GET", ce1["url"] + "/api/v1/tenants", headers={"Authorization": "Bearer " + ce1["admin_token"]})
        assert status == 200 and sorted(t["name"] for t in page["items"]) == ["t0001", "t0002", "t0003"]
    finally:
        stop_lab(state_dir)
    assert not os.path.exists(os.path.join(state_dir, "lab.pid"))
