# -*- coding: utf-8 -*-
"""Issue 18.2: a fleet run you can read. playbooks/site.yml over the lab fleet (six CE tenants, two CE deployments, three
directories) with the stdout callback ceops.exchange_oauth.fleet, as an operator turns it on (ANSIBLE_STDOUT_CALLBACK).

Two real runs on a fresh lab, module-scoped:
  failing   a cold converge with --diff where the us deployment's Portal token is wrong (hooli, stark, umbrella fail in the CE
            part, before anything is made for them) and acme lists a mailbox its directory does not have (acme fails in the
            Exchange Online part); CE's new secrets are kept for the next run, as Vault would keep them;
  repaired  the same without the faults: every CE tenant ends ok.
What an operator relies on is asserted on the output: one line per play naming its part with the right counts, each
failure with its CE tenants and the service's message, running lines that count up to the play's line, the summary lines as
the playbook gives them, the PLAY RECAP; no line per task, no skipped host, and no secret the runs know, in any encoding.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

from playbook_output import recap
from security_support import lab_secrets, variants
from lab_fleet import REPO, SAVE_APPS, TENANTS, Fleet

CALLBACK = {"ANSIBLE_STDOUT_CALLBACK": "ceops.exchange_oauth.fleet", "CEOPS_FLEET_PROGRESS_INTERVAL": "0"}
WRONG_TOKEN = "cep_not-the-us-token-7c1d9e"
GONE = "ce-gone@contoso.onmicrosoft.com"
US = ["hooli", "stark", "umbrella"]
# The plays of site.yml in order, each "<part>: <done>/<total> CE tenants done, <failed> failed[, <n> failed earlier] - <what>".
GATEWAY = "the Exchange Online gateway of every CE deployment"
AZURE_AD = "register CE's app in every Microsoft directory"
EXCHANGE = "register CE's app and give it access to the CE tenants' mailboxes"
READ_APP = "read CE's app and its CE tenants' client secrets, when the Azure AD part did not run before"
SETTINGS = "the OAuth settings of every CE tenant, as far as they need no new secret"
NEW_SECRET = "a new client secret of CE's app for each CE tenant whose CE needs one"
INTO_CE = "the new secrets into CE"
CONNECTION = "every CE tenant's email connection"
BATCH = "one batch update per CE deployment"
VERIFY = "CE logs in to its Exchange Online mailboxes with OAuth"
RETIRE = "Retire the client secrets CE no longer needs"
REVOKE = "the apps with mailboxes that may lose CE's FullAccess"


def keep_secrets_playbook(work, fleet, name):
    """site.yml, then a test-only play that keeps the run's new CE secrets in a 0600 file (what Vault would hold)."""
    path = work / ("%s.yml" % name)
    keep = str(work / ("%s-apps.json" % name))
    path.write_text(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", keep))
    return str(path), keep


def ce_secrets(path):
    with open(path) as handle:
        apps = json.load(handle)["ms_apps"]
    found = {}
    for directory, app in apps.items():
        for host, secret in (app.get("client_secrets") or {}).items():
            found["CE secret of %s" % host] = secret
    return found


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    lab.reset()
    work = tmp_path_factory.mktemp("fleet-callback")
    fleet = Fleet(lab, work)
    runs = {"secrets": dict(lab_secrets(lab), **{"wrong CE token": WRONG_TOKEN}), "us_url": lab.vars["lab_ce_deployments"]["us"]["url"]}

    playbook, kept = keep_secrets_playbook(work, fleet, "failing")
    runs["failing"] = fleet.run(playbook, "--diff", apps=False, environment=CALLBACK,
                                group_vars={"ce_deployment_us": {"ce_token": WRONG_TOKEN}},
                                host_vars={"acme": {"ce_mailboxes": TENANTS["acme"]["ce_mailboxes"] + [GONE]}})
    (work / "failing.log").write_text(runs["failing"].output)  # for a person reading a failure
    runs["secrets"].update(ce_secrets(kept))
    fleet.ms_apps_file = kept  # the next run proves globex's and initech's logins with the secrets CE got

    playbook, kept = keep_secrets_playbook(work, fleet, "repaired")
    runs["repaired"] = fleet.run(playbook, environment=CALLBACK)
    (work / "repaired.log").write_text(runs["repaired"].output)
    runs["secrets"].update(ce_secrets(kept))
    return runs


def play_lines(output):
    """The line each play ends with, without its duration."""
    return [re.sub(r" \(\d+(m\d\d)?s\)$", "", line) for line in output.splitlines()
            if re.match(r"^\S.*: \d+/\d+ CE tenants done, \d+ failed", line) or re.match(r"^(The fleet|Summary per CE tenant|Keep CE)", line)]


def line(part, done, total, failed, earlier=0, what=""):
    return "%s: %d/%d CE tenants done, %d failed%s%s" % (part, done, total, failed, ", %d failed earlier" % earlier if earlier else "",
                                                        " - " + what if what else "")


def test_the_runs_did_what_the_test_is_about(runs):
    assert runs["failing"].returncode == 2, runs["failing"].output[-3000:]
    assert runs["repaired"].returncode == 0, runs["repaired"].output[-3000:]
    assert len([k for k in runs["secrets"] if k.startswith("CE secret of")]) == 6  # every CE tenant's own secret, made and kept


def test_one_line_per_play_names_its_part_and_counts_the_ce_tenants_done_and_failed(runs):
    assert play_lines(runs["failing"].stdout) == [
        "The fleet: 6 CE tenants, 3 apps, 2 CE deployments",
        line("CE", 6, 6, 3, what=GATEWAY),
        line("Azure AD", 3, 3, 0, 3, AZURE_AD),
        line("Exchange Online", 3, 3, 1, 3, EXCHANGE),
        line("CE", 2, 2, 0, 4, READ_APP),
        line("CE", 2, 2, 0, 4, SETTINGS),
        line("CE", 2, 2, 0, 4, NEW_SECRET),
        line("CE", 2, 2, 0, what=INTO_CE),  # only the CE tenants that got a new secret: globex and initech
        line("CE", 2, 2, 0, 4, CONNECTION),
        line("CE", 2, 2, 0, 4, BATCH),
        line("Exchange Online", 2, 2, 0, 4, REVOKE),
        line("Verify", 2, 2, 0, 4, VERIFY),
        line(RETIRE, 2, 2, 0, 4),
        "Summary per CE tenant: 6 CE tenants: 2 ok, 4 failed",
        "Keep CE's app and its new secret per directory: done on localhost"]
    assert play_lines(runs["repaired"].stdout) == [
        "The fleet: 6 CE tenants, 3 apps, 2 CE deployments",
        line("CE", 6, 6, 0, what=GATEWAY), line("Azure AD", 6, 6, 0, what=AZURE_AD), line("Exchange Online", 6, 6, 0, what=EXCHANGE),
        line("CE", 6, 6, 0, what=READ_APP), line("CE", 6, 6, 0, what=SETTINGS), line("CE", 6, 6, 0, what=NEW_SECRET),
        line("CE", 4, 4, 0, what=INTO_CE),  # the four that failed before had no secret yet
        line("CE", 6, 6, 0, what=CONNECTION), line("CE", 6, 6, 0, what=BATCH), line("Exchange Online", 6, 6, 0, what=REVOKE),
        line("Verify", 6, 6, 0, what=VERIFY),
        line(RETIRE, 6, 6, 0),
        "Summary per CE tenant: 6 CE tenants: 6 ok",
        "Keep CE's app and its new secret per directory: done on localhost"]


def test_each_failure_names_its_ce_tenants_and_the_service_s_message_under_its_part(runs):
    lines = runs["failing"].stdout.splitlines()
    gateway = lines.index(next(l for l in lines if l.startswith(line("CE", 6, 6, 3, what=GATEWAY))))
    failed = lines[gateway + 1]
    assert failed.startswith("  FAILED hooli, stark, umbrella: CE: CE deployment %s" % lab_us_url(runs)), failed
    assert "401" in failed and "check ce_token" in failed
    exchange = lines.index(next(l for l in lines if l.startswith(line("Exchange Online", 3, 3, 1, 3, EXCHANGE))))
    failed = lines[exchange + 1]
    assert failed.startswith("  FAILED acme: Exchange Online: CE tenant acme, directory "), failed
    assert "mailbox %s does not exist in Exchange Online" % GONE in failed
    # Each failure is shown once in its part, not again for the lead's ignored error, nor in the parts after it.
    assert len([l for l in lines if l.startswith("  FAILED") and "401" in l]) == 1
    assert len([l for l in lines if l.startswith("  FAILED") and GONE in l]) == 1


def test_running_lines_count_up_to_the_play_s_line(runs):
    lines = runs["failing"].stdout.splitlines()
    for final in (line("CE", 6, 6, 3, what=GATEWAY), line("Exchange Online", 3, 3, 1, 3, EXCHANGE), line("Verify", 2, 2, 0, 4, VERIFY)):
        end = lines.index(next(l for l in lines if l.startswith(final)))
        start = max(i for i in range(end) if play_lines(lines[i]))  # the line of the play before
        running = [l for l in lines[start + 1:end] if l.startswith("  ... ")]
        total = int(final.split("/")[1].split()[0])
        # One after each CE tenant done, the last with the play's counts.
        assert [int(l.split(": ")[1].split("/")[0]) for l in running] == list(range(1, total + 1)), running
        assert running[-1] == "  ... " + final.split(" - ")[0]


def test_no_line_per_task_or_skipped_host_and_the_summary_and_recap_are_there(runs):
    for label in ("failing", "repaired"):
        output = runs[label].stdout
        for noise in ("TASK [", "skipping:", "ok: [", "changed: [", "PLAY [", "included:", "...ignoring"):
            assert noise not in output, (label, noise)
        assert unexplained(output) == [], label
        hosts = recap(output)
        assert sorted(hosts) == sorted(list(TENANTS) + ["localhost"]), label
    failing, repaired = recap(runs["failing"].stdout), recap(runs["repaired"].stdout)
    assert dict((h, failing[h]["failed"]) for h in TENANTS) == dict((h, int(h in US + ["acme"])) for h in TENANTS)
    assert all(repaired[h]["failed"] == 0 for h in TENANTS)


def test_the_summary_lines_are_printed_as_the_playbook_gives_them(runs):
    failing = status_lines(runs["failing"].stdout)
    assert dict((h, failing[h][0].split()[1]) for h in TENANTS) == dict((h, "FAILED" if h in US + ["acme"] else "ok") for h in TENANTS)
    for host in US:
        assert failing[host][1].startswith("    CE: CE deployment %s" % lab_us_url(runs)) and "401" in failing[host][1]
    assert failing["acme"][1].startswith("    Exchange Online: CE tenant acme") and GONE in failing["acme"][1]
    assert "logins 2/2 ok" in failing["globex"][0] and "logins 3/3 ok" in failing["initech"][0]
    repaired = status_lines(runs["repaired"].stdout)
    for host, tenant in TENANTS.items():
        n = len(tenant["ce_mailboxes"])
        assert repaired[host][0].split()[1] == "ok" and "logins %d/%d ok" % (n, n) in repaired[host][0], repaired[host]


def test_no_secret_the_runs_know_is_in_their_output(runs):
    for label in ("failing", "repaired"):
        output = runs[label].output
        for name, secret in runs["secrets"].items():
            for form in variants(secret):
                assert form not in output, (label, name)


def unexplained(output):
    """The lines before the recap that are none of: a play's line, a failure or change under it, a running line, a diff
    (--diff), a line of the summary."""
    left, in_diff = [], False
    for text in output.split("PLAY RECAP")[0].splitlines():
        if play_lines(text) or text.startswith(("  FAILED ", "  changed on ", "  ... ")):
            in_diff = False
        elif text.startswith("  diff of "):
            in_diff = True
        elif in_diff and text[:1] in ("-", "+", "@", " "):
            pass
        elif re.match(r"^\S+\s+(ok|FAILED|todo|done)\s+directory ", text) or text.startswith("    "):
            in_diff = False
        elif text.strip():
            left.append(text)
    return left


def lab_us_url(runs):
    return runs["us_url"]


def status_lines(output):
    """{CE tenant: [its summary status line, the lines below it]} from the summary as the callback printed it."""
    tenants, current = {}, None
    for text in output.splitlines():
        first = text.split(" ", 1)[0]
        if first in TENANTS and re.match(r"^\S+\s+(ok|FAILED|todo|done)\s+directory ", text):
            current = first
            tenants[current] = [text]
        elif current and text.startswith("    "):
            tenants[current].append(text)
        else:
            current = None
    return tenants
