"""Helpers for the lab's own tests (imported by test modules of tests/lab, which pytest puts on sys.path)."""

import requests

ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@%s"


def reason_of(body):
    """What a client must show: details[0].message without its "<code>|<type>|" prefix, else the
    internal exception's message, else error.message."""
    error = body["error"]
    details = error.get("details") or []
    if details:
        return details[0]["message"].split("|", 2)[-1]
    internal = (error.get("innererror") or {}).get("internalexception") or {}
    return internal.get("message") or error["message"]


class Exchange:
    def __init__(self, lab, token, tenant):
        self.lab = lab
        self.token = token
        self.url = "%s/adminapi/beta/%s/InvokeCommand" % (lab.url("exchange"), tenant)
        self.tenant = tenant
        self.session = requests.Session()

    def post(self, url, cmdlet, parameters=None, token=None, headers=None):
        all_headers = {"X-AnchorMailbox": ANCHOR % self.tenant, "X-ResponseFormat": "json"}
        if token is not False:
            all_headers["Authorization"] = "Bearer " + (token or self.token)
        all_headers.update(headers or {})
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters or {}}}
        return self.session.post(url, json=body, headers=all_headers, verify=self.lab.ca_file, timeout=10)

    def run(self, cmdlet, parameters=None, **kwargs):
        return self.post(self.url, cmdlet, parameters, **kwargs)

    def ok(self, cmdlet, parameters=None, **kwargs):
        response = self.run(cmdlet, parameters, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["value"]
