# -*- coding: utf-8 -*-
"""Building the collection the way a release does (test helpers for test_build.py and test_execution_environment.py)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def galaxy_version():
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


def build_collection(output_dir):
    """ansible-galaxy collection build of the working tree into output_dir (a pathlib.Path); the artifact's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(output_dir), REPO],
                   check=True, capture_output=True, text=True, timeout=300)
    (artifact,) = output_dir.glob("ceops-exchange_oauth-*.tar.gz")
    return artifact
