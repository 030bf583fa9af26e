# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one module base: the exit and fail path every module of the collection takes.

The Microsoft and CE families (microsoft_module.py, ce_module.py) add their argument spec and their clients; the work
itself is a reconciler's (reconcile.py), whose result or error becomes the task's result here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, timeout_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._scrub import ScrubsSecrets
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.reconcile import StepError, TaskError


class CeopsModule(ScrubsSecrets, AnsibleModule):
    """Every exit, failure and warning goes out scrubbed of the module's secrets in every encoding (_scrub.py).
    ``where`` says what the module works on when nothing more precise is known (a directory, a CE deployment)."""

    where = "the task"

    def __init__(self, argument_spec, **kwargs):
        super(CeopsModule, self).__init__(argument_spec=argument_spec, **kwargs)
        if "timeout" in self.params and timeout_problem(self.params["timeout"]):
            self.fail_json(msg=timeout_problem(self.params["timeout"]))

    def fail_service(self, error, doing, **result):
        """Fail with what we were doing, the service's own words and code, its request id and the fix."""
        self.fail_json(msg="%s: %s" % (doing, error.describe()), status=error.status, error_code=error.code,
                       request_id=error.request_id, **result)

    def run(self, work, warnings=()):
        """Call ``work()`` -> result dict and exit; any error becomes one clear failure. ``warnings`` (a callable returning
        a list, or a list) are reported also when the work fails: a skipped check may be the explanation."""
        try:
            try:
                result = work()
            finally:
                self.close()
        except StepError as error:
            self._warn_all(warnings)
            self.fail_service(error.cause, error.doing, **error.partial)
        except TaskError as error:
            self._warn_all(warnings)
            self.fail_json(msg=str(error), **error.partial)
        except ServiceError as error:
            self._warn_all(warnings)
            self.fail_service(error, self.where)
        except Exception as error:  # pylint: disable=broad-except
            # A bug must still end as one task failure with the trace in -vvv, not a module crash.
            self.fail_json(msg="unexpected error: %s" % error, exception=traceback.format_exc())
        self._warn_all(warnings)
        self.exit_json(**result)

    def close(self):
        """Ends what the clients hold open (the family's to say); called before the module exits, whatever happened."""

    def _warn_all(self, warnings):
        for warning in (warnings() if callable(warnings) else warnings):
            self.warn(warning)
