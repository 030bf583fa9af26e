#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ce_batch_update
short_description: Apply a CE deployment's pending configuration with a batch update, when there is any
version_added: 0.2.0
description:
  - Does the last step of the runbook's CE part (Server Updates > batch update), idempotently. Changes made in the Portal, by
    hand or by the other ce_* modules, reach the mail servers only after a successful batch update.
  - Starts a batch update only when the Portal reports pending configuration (or when O(force=true)), and waits for it to finish.
  - Only one batch update runs at a time. When one is already queued or running (started by someone else, or by an earlier run
    that was interrupted), the module waits for it, then starts another only if configuration is still pending, because an update
    applies only what was pending when it started.
  - So it is idempotent by itself - a run that changed configuration but died before the batch update is finished by the next run.
  - Fails with the update's own errors when it fails, and says what to do when it does not finish within O(wait_timeout).
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.ce_portal
  - ceops.exchange_oauth.ce_portal.ATTRIBUTES
  - ceops.exchange_oauth.in_process
attributes:
  check_mode:
    description: Reads only; reports a change when configuration is pending (or O(force=true)) and starts and waits for nothing.
    support: full
  diff_mode:
    description: Shows whether configuration is pending and which objects changed (tenant, kind, id), and a running update.
    support: full
options:
  force:
    description:
      - Start a batch update even when the Portal reports no pending configuration.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait in all for batch updates to finish, including one that was already running; 1 to 86400 (a day).
      - When it passes, the task fails; the update goes on in the Portal, and running the task again waits for it.
    type: int
    default: 900
  poll_interval:
    description:
      - Seconds between two looks at a running batch update; 0.1 to 300. Checked before the first request, so a wrong value
        starts nothing.
    type: float
    default: 5
notes:
  - Run it once per CE deployment, after every CE tenant of the deployment has written its configuration. A tenant administrator
    may start it too; it applies the pending configuration of the whole deployment.
seealso:
  - module: ceops.exchange_oauth.ce_email_connection
'''

EXAMPLES = r'''
- name: Apply what is pending on the deployment
  ceops.exchange_oauth.ce_batch_update:
    ce_url: https://ce-portal.example.com
    ce_token: "{{ ce_token }}"

- name: Apply once per deployment, after all its tenants (credentials from module_defaults)
  ceops.exchange_oauth.ce_batch_update:
    wait_timeout: 1800
  run_once: true
'''

RETURN = r'''
batch_update:
  description:
    - The batch update this run started, as it finished (or as it was when the wait ran out).
    - Named so that C(result.batch_update) in Jinja never meets the C(update) method of a dict.
  returned: when an update was started or waited for in vain
  type: dict
  contains:
    id:
      description: The Portal's id of the update.
      type: str
    status:
      description: C(queued), C(running), C(succeeded) or C(failed).
      type: str
    requested_at:
      description: When it was requested (RFC 3339).
      type: str
    finished_at:
      description: When it finished (RFC 3339), or null.
      type: str
    errors:
      description: The update's errors.
      type: list
      elements: str
pending:
  description: Whether configuration is still pending at the end (before the run, in check mode).
  returned: always
  type: bool
pending_changes:
  description: The pending changes the Portal reported at the start (C(tenant), C(kind), C(id), C(changed_at)).
  returned: always
  type: list
  elements: dict
coalesced_with:
  description: Ids of batch updates started elsewhere that this run waited for.
  returned: always
  type: list
  elements: str
ce_version:
  description: CE version the Portal reports.
  returned: always
  type: str
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import range_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_module import CeModule
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_reconcile import BatchUpdateReconciler


def argument_spec():
    return dict(
        force=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=900),
        poll_interval=dict(type="float", default=5),
    )


# A batch update may take minutes on a big deployment; a day is past any of them. Polling faster than every 0.1 s only
# loads the Portal, and slower than every 5 minutes makes a finished update wait for nothing.
WAIT_TIMEOUT_RANGE = (1, 86400)
POLL_INTERVAL_RANGE = (0.1, 300)


def input_problem(params):
    return (range_problem("wait_timeout", params["wait_timeout"], WAIT_TIMEOUT_RANGE[0], WAIT_TIMEOUT_RANGE[1], "seconds")
            or range_problem("poll_interval", params["poll_interval"], POLL_INTERVAL_RANGE[0], POLL_INTERVAL_RANGE[1], "seconds"))


def main():
    module = CeModule(argument_spec(), supports_check_mode=True)
    problem = input_problem(module.params)
    if problem:
        module.fail_json(msg="%s: %s" % (module.where, problem))
    reconciler = BatchUpdateReconciler(module.portal, module.params, check_mode=module.check_mode, warn=module.warn)
    module.run(reconciler.run)


if __name__ == "__main__":
    main()
