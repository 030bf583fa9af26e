# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to this collection: what the stdout callback ceops.exchange_oauth.fleet (plugins/callback/fleet.py) makes of a
run's events - which CE tenants each play works for, how many are done, which failed and why (docs/fleet.md).

Plain data in, lines of text out, so each rule has a unit test: the callback turns Ansible's task results into ``Result``
records and displays the lines this returns. Progress is counted from what the plays do, not from Ansible's failed hosts
(the parts record a CE tenant's failure and leave the failing to the summary):

- the fleet play elects the CE tenant that stands for each app and each CE deployment with add_host, carrying the unit and
  its members (plugin_utils/fleet.py, elect): that names the run's CE tenants and whom each unit's play works for;
- a play on ceops_app_leads / ceops_deployment_leads works for the members of the units it stands for, and a member is done
  when the unit's work hands it its share (a set_fact delegated to it with delegate_facts); a play on a group add_host made
  (ceops_new_secrets) works for that group; any other play works for the run's CE tenants, each done with its first result
  of a task that does work (not set_fact, add_host, includes, checks, debug);
- a CE tenant fails in a play when its ceops_failures gain an entry (a unit's hand-off, a rescue's record), or when a task
  fails on it and nothing records it (Ansible's own failure: not rescued, not ignored);
- a CE tenant that failed in an earlier play is skipped by every later part: counted apart, as "failed earlier".
"""

from __future__ import annotations

import collections
import time

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.fleet import APP_GROUP, DEPLOYMENT_GROUP, one_line

# The group of the CE tenants that stand for a unit, and the add_host variable that carries the unit.
UNIT_VARS = {APP_GROUP: "ceops_app_unit", DEPLOYMENT_GROUP: "ceops_deployment_unit"}
FAILURES_FACT = "ceops_failures"
# What playbooks/plays/summary.yml hands to AWX (set_stats): one record per CE tenant with its status.
SUMMARY_STATS = "ceops_summary"
# The summary's statuses, in the order the summary line counts them; "not converged" is the summary lines' "todo".
STATUS_WORDS = (("ok", "ok"), ("not converged", "todo"), ("done", "done"), ("FAILED", "failed"))
# Actions that move values around or decide what runs: a result of one says nothing about a CE tenant's work.
BOOKKEEPING = frozenset(("set_fact", "add_host", "group_by", "include_tasks", "import_tasks", "include_role", "import_role",
                         "include_vars", "validate_argument_spec", "assert", "debug", "set_stats", "meta", "include"))
# Names listed in one line at most; the summary at the end names every CE tenant.
MAX_NAMES = 10
HIDDEN = "output hidden (no_log)"


class Result(object):
    """One task result (or loop item) as the callback saw it; only what was not hidden by no_log.

    host: the inventory host it ran on; handed_to: the host it set facts on with delegate_to and delegate_facts (a unit's
    hand-off to one of its CE tenants), else None;
    status: ok, changed, failed, skipped or unreachable; ignored: a failure the task ignores (ignore_errors); censored: the
    result was hidden by no_log (facts, message and item are then None); action: the task's action, short names for
    ansible.builtin; is_item: one item of a loop (a loop's own result only counts for failures and changes); facts: the facts
    it set; add_host: what add_host added (host_name, groups, host_vars); stats: the data of set_stats."""

    def __init__(self, host, task, status, action="", handed_to=None, ignored=False, censored=False, is_item=False, msg=None,
                 facts=None, add_host=None, stats=None):
        self.host = host
        self.task = task
        self.status = status
        self.action = short_action(action)
        self.handed_to = handed_to
        self.tenant = handed_to or host
        self.ignored = ignored
        self.censored = censored
        self.is_item = is_item
        self.msg = msg
        self.facts = facts if isinstance(facts, dict) else {}
        self.add_host = add_host if isinstance(add_host, dict) else None
        self.stats = stats if isinstance(stats, dict) else None


def short_action(action):
    action = str(action or "")
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def split_name(name):
    """'Exchange Online - register CE's app ...' -> ('Exchange Online', "register CE's app ..."); a name without ' - ' is
    its own part."""
    part, sep, what = str(name or "").partition(" - ")
    return (part.strip(), what.strip()) if sep else (part.strip(), "")


def names(hosts):
    hosts = sorted(hosts)
    if len(hosts) > MAX_NAMES:
        return "%s and %d more" % (", ".join(hosts[:MAX_NAMES]), len(hosts) - MAX_NAMES)
    return ", ".join(hosts)


def counted(number, noun):
    return "%d %s%s" % (number, noun, "" if number == 1 else "s")


def seconds(elapsed):
    elapsed = int(round(elapsed))
    return "%dm%02ds" % (elapsed // 60, elapsed % 60) if elapsed >= 60 else "%ds" % elapsed


class Play(object):
    def __init__(self, name, scope, unit_play, failed_before, started):
        self.name = name
        self.part, self.what = split_name(name)
        self.scope = scope  # the CE tenants it works for; None: not known (no fleet play), the hosts it ran on
        self.unit_play = unit_play
        self.failed_before = failed_before
        self.started = started
        self.seen = set()
        self.done = set()
        self.new_failures = collections.OrderedDict()  # CE tenant -> [(part, message)] recorded in this play
        self.fatal = collections.OrderedDict()  # host -> (task, message): failed, not ignored (rescued unless recorded)
        self.ignored = []  # (host, task, message or None when hidden)
        self.changed = collections.OrderedDict()  # task -> [hosts]
        self.elected = False
        self.summary = None
        self.no_hosts = False


class FleetRun(object):
    """The state of one ansible-playbook run, fed play by play and result by result."""

    def __init__(self, check_mode=False, clock=time.time):
        self.check_mode = check_mode
        self.clock = clock
        self.tenants = []  # the run's CE tenants, as the fleet play elected them
        self.units = dict((group, {}) for group in UNIT_VARS)  # group -> {lead: [members]}
        self.groups = {}  # add_host group -> [hosts]
        self.failures = {}  # CE tenant -> [(part, message)] known so far
        self.play = None

    # -- plays --------------------------------------------------------------------------------------------------------
    def start_play(self, name, hosts):
        """A new play: the lines that end the one before, if any."""
        lines = self.end_play()
        scope, unit_play = self.scope(hosts)
        failed_before = set(t for t in (scope if scope is not None else self.failures) if self.failures.get(t))
        self.play = Play(name, scope, unit_play, failed_before, self.clock())
        return lines

    def no_hosts(self):
        if self.play:
            self.play.no_hosts = True

    def scope(self, hosts):
        """(the CE tenants a play on ``hosts`` works for, whether it is a unit's play)."""
        patterns = [hosts] if isinstance(hosts, str) else [str(h) for h in hosts or []]
        patterns = [p for p in patterns if p and p != "!all"]
        if not patterns:
            return [], False
        if len(patterns) == 1 and patterns[0] in UNIT_VARS and patterns[0] in self.groups:
            members = []
            for lead in self.groups[patterns[0]]:
                members.extend(m for m in self.units[patterns[0]].get(lead, [lead]) if m not in members)
            return members, True
        if len(patterns) == 1 and patterns[0] in self.groups:
            return list(self.groups[patterns[0]]), False
        return (list(self.tenants) if self.tenants else None), False

    def end_play(self):
        play, self.play = self.play, None
        if play is None or play.no_hosts or not play.seen:
            return []
        lines = [self._end_line(play)]
        lines.extend(self._failure_lines(play))
        for task, hosts in play.changed.items():
            lines.append(("changed", "  changed on %s: %s" % (names(hosts), task)))
        return lines

    def _end_line(self, play):
        took = seconds(self.clock() - play.started)
        if play.elected:
            return ("progress", "%s: %s, %s, %s%s (%s)" % (
                play.part, counted(len(self.tenants), "CE tenant"), counted(len(self.units[APP_GROUP]), "app"),
                counted(len(self.units[DEPLOYMENT_GROUP]), "CE deployment"), " - check mode: nothing is written" if self.check_mode else "",
                took))
        if play.summary is not None:
            statuses = collections.Counter(str(r.get("status")) for r in play.summary if isinstance(r, dict))
            statuses_text = ", ".join("%d %s" % (statuses[status], word) for status, word in STATUS_WORDS if statuses[status])
            failed = statuses["FAILED"]
            return ("failed" if failed else "progress",
                    "%s: %s: %s (%s)" % (play.part, counted(len(play.summary), "CE tenant"), statuses_text or "none", took))
        if self.outside_fleet(play):
            return ("failed" if play.fatal else "progress", "%s: done on %s%s (%s)" % (
                play.name, names(play.seen), ", %d failed" % len(play.fatal) if play.fatal else "", took))
        done, total, failed, earlier = self.counts(play, finished=True)
        return ("failed" if failed else "progress",
                "%s (%s)" % (self._progress_text(play, done, total, failed, earlier, with_what=True), took))

    @staticmethod
    def outside_fleet(play):
        """A play of the run's CE tenants that ran on none of them (a play of the playbook's own on localhost)."""
        return play.scope is not None and not play.unit_play and not (set(play.scope) & (play.seen | play.done))

    def _failure_lines(self, play):
        lines = []
        grouped = collections.OrderedDict()
        for tenant, entries in play.new_failures.items():
            for entry in entries:
                grouped.setdefault(entry, []).append(tenant)
        for (part, message), tenants in grouped.items():
            lines.append(("failed", "  FAILED %s: %s%s" % (names(tenants), "%s: " % part if part else "", message)))
        for host, (task, message) in play.fatal.items():
            if host not in play.new_failures:  # a rescue recorded it: shown above
                lines.append(("failed", "  FAILED %s: %s: %s" % (host, task, message if message is not None else HIDDEN)))
        recorded = [message for entries in play.new_failures.values() for _part, message in entries]
        for host, task, message in play.ignored:
            if message is None:
                lines.append(("failed", "  %s: %s failed, its output hidden (no_log); the summary says which CE tenants it failed"
                              % (host, task)))
            elif not any(message in text for text in recorded):  # else a hand-off recorded it for its CE tenants: shown above
                lines.append(("failed", "  error on %s (ignored): %s: %s" % (host, task, message)))
        return lines

    # -- results ------------------------------------------------------------------------------------------------------
    def result(self, result):
        """Take one result; True when the play's counts changed (time for a running line)."""
        play = self.play
        if play is None:
            return False
        before = self.counts(play)
        play.seen.add(result.host)
        if result.add_host:
            self._add_host(result.add_host)
        if result.stats and isinstance(result.stats.get(SUMMARY_STATS), list):
            play.summary = result.stats[SUMMARY_STATS]
        if isinstance(result.facts.get(FAILURES_FACT), list):
            self._record(play, result.tenant, result.facts[FAILURES_FACT])
        if result.handed_to:
            play.done.add(result.tenant)  # a hand-off: the unit's work is through for this CE tenant (hidden or not)
        elif not play.unit_play and result.action not in BOOKKEEPING and not result.is_item:
            play.done.add(result.host)
        if not result.is_item:
            self._outcome(play, result)
        return self.counts(play) != before

    def _outcome(self, play, result):
        if result.status in ("failed", "unreachable") and not result.ignored:
            play.fatal.setdefault(result.host, (result.task, None if result.censored else one_line(result.msg)))
        elif result.status == "failed":
            play.ignored.append((result.host, result.task, None if result.censored else one_line(result.msg)))
        elif result.status == "changed":
            hosts = play.changed.setdefault(result.task, [])
            if result.host not in hosts:
                hosts.append(result.host)

    def _add_host(self, added):
        host = added.get("host_name")
        host_vars = added.get("host_vars") or {}
        if not host:
            return
        for group in added.get("groups") or []:
            self.groups.setdefault(group, [])
            if host not in self.groups[group]:
                self.groups[group].append(host)
        elected = False
        for group, var in UNIT_VARS.items():
            unit = host_vars.get(var)
            if isinstance(unit, dict):
                self.units[group][host] = [str(m) for m in unit.get("members") or []]
                elected = True
        if isinstance(host_vars.get(FAILURES_FACT), list):
            self._record(self.play, host, host_vars[FAILURES_FACT])
            elected = True
        if elected:
            self.play.elected = True
            for tenant in [host] + [m for units in self.units.values() for m in units.get(host, [])]:
                if tenant not in self.tenants:
                    self.tenants.append(tenant)
            self.tenants.sort()

    def _record(self, play, tenant, failures):
        known = self.failures.setdefault(tenant, [])
        for item in failures:
            if not isinstance(item, dict):
                continue
            entry = (str(item.get("part") or ""), one_line(item.get("message")))
            if entry not in known:
                known.append(entry)
                play.new_failures.setdefault(tenant, []).append(entry)
                play.done.add(tenant)

    # -- counts -------------------------------------------------------------------------------------------------------
    def counts(self, play, finished=False):
        """(done, total, failed, failed earlier): total is the CE tenants the play works for that had not failed before it;
        failed and done count among them. A finished play is done with all of them."""
        scope = play.scope if play.scope is not None else sorted(play.seen | play.done)
        total = [t for t in scope if t not in play.failed_before]
        failed = set(t for t in total if t in play.new_failures or t in play.fatal)
        done = len(total) if finished else len(set(t for t in total if t in play.done) | failed)
        return done, len(total), len(failed), len(set(scope) & play.failed_before)

    def _progress_text(self, play, done, total, failed, earlier, with_what=False):
        text = "%s: %d/%d CE tenants done, %d failed" % (play.part, done, total, failed)
        if earlier:
            text += ", %d failed earlier" % earlier
        if with_what and play.what:
            text += " - %s" % play.what
        return text

    def progress(self):
        """The running line of the play under way, or None (no play, or one that works for CE tenants not known yet)."""
        play = self.play
        if play is None or play.scope is None or play.elected or play.summary is not None or not play.seen or self.outside_fleet(play):
            return None
        return self._progress_text(play, *self.counts(play))
