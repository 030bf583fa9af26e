# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one compare-and-act frame of every module: read, compare, write at most what differs, record what was done.

A reconciler names its object (``label``), runs each remote call through ``step`` (a failure then names the object,
the step, and what was done before it) and each write through ``act`` (recorded always, sent only outside check mode,
and a change only once the service accepted it). The module base (ceops_module.py) turns what it returns or raises
into the task's result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError


class StepError(Exception):
    """A ServiceError with the object and step that failed, and what was done before it."""

    def __init__(self, doing, cause, partial=None):
        super(StepError, self).__init__(doing)
        self.doing = doing
        self.cause = cause
        self.partial = partial or {}


class TaskError(Exception):
    """The task cannot succeed and no service failed (bad input, a refusal of ours, a failure the service reported in a
    successful answer): the message names the object and says what to do."""

    def __init__(self, message, partial=None):
        super(TaskError, self).__init__(message)
        self.partial = partial or {}


class AlreadyDone:
    """What a write returns when the service says another run has just done it (an AWX slice, a second job): not a
    change of ours."""

    def __init__(self, value=None):
        self.value = value


class Reconciler:
    """Subclasses set ``label`` (which object, where) and implement ``run()`` -> result dict."""

    label = "object"

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.actions = []
        self.warnings = []
        self.changed = False
        self.result = {}

    def partial(self):
        """What the task reports when it fails now: what is known and what was done so far."""
        return dict(self.result, changed=self.changed, actions=list(self.actions))

    def step(self, doing, call):
        """Run one remote call; a failure names the object, the step, and what had already been done."""
        try:
            return call()
        except ServiceError as error:
            raise StepError("%s: %s" % (self.label, doing), error, self.partial())

    def act(self, description, call):
        """A write: recorded always, sent only outside check mode. It is a change once the service accepted it (in check
        mode: once planned); a write the service refused changes nothing, and one another run did first
        (``AlreadyDone``) is recorded as such and is no change of ours."""
        self.actions.append(description)
        if self.check_mode:
            self.changed = True
            return None
        outcome = self.step(description, call)
        if isinstance(outcome, AlreadyDone):
            self.actions[-1] = "%s: already done by another run" % description
            return outcome.value
        self.changed = True
        return outcome

    def refuse(self, message):
        """Stop without a service error: ``message`` names what is wrong and what to do."""
        raise TaskError("%s: %s" % (self.label, message), self.partial())

    def finish(self, before, after):
        result = self.partial()
        result["diff"] = {"before": before, "after": after}
        return result
