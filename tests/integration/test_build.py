# -*- coding: utf-8 -*-
"""The built collection carries collection content only: no lab, no test harness, no local state."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_artifact_has_no_lab_or_harness(tmp_path):
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"), "collection", "build", "--output-path",
                    str(tmp_path), REPO], check=True, capture_output=True, text=True)
    (artifact,) = tmp_path.glob("ceops-exchange_oauth-*.tar.gz")
    with tarfile.open(str(artifact)) as tar:
        names = tar.getnames()
    assert "plugins/modules/azuread_app.py" in names and "roles/azuread_app_registration/tasks/main.yml" in names
    forbidden = ("lab/", "inventories/lab/", "tests/integration/", "tests/lab/", "extensions/", "scripts/", ".lab/", ".venv/", ".ci/")
    assert not [n for n in names if n.startswith(forbidden) or n in ("Makefile", "conftest.py", "requirements-dev.txt")]
