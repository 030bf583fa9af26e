# -*- coding: utf-8 -*-
"""Each role's meta/argument_specs.yml (its generated docs, and what Ansible validates role inputs against) agrees with the
role's defaults/main.yml (what the role really gets): every default is documented, a documented default is the real one,
and the real defaults pass the spec's validation."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.listdir(os.path.join(REPO, "roles")))


def load(role, *path):
    with open(os.path.join(REPO, "roles", role, *path)) as handle:
        return yaml.safe_load(handle) or {}


def is_template(value):
    return isinstance(value, str) and "{{" in value


def description_text(option):
    description = option.get("description", "")
    return " ".join(description) if isinstance(description, list) else description


@pytest.fixture(params=ROLES)
def role(request):
    defaults = load(request.param, "defaults", "main.yml")
    options = load(request.param, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    return request.param, defaults, options


def test_every_default_is_a_documented_option(role):
    name, defaults, options = role
    assert sorted(set(defaults) - set(options)) == [], "%s: defaults/main.yml variables missing from meta/argument_specs.yml" % name


def test_documented_defaults_are_the_real_ones(role):
    """A literal default must be documented as it is; a computed one ({{ }}) either as the same template or, where the
    option's type cannot hold a template (antsibull-docs and ansible-doc validate defaults), in the description."""
    name, defaults, options = role
    wrong = []
    for variable, option in sorted(options.items()):
        if variable not in defaults:
            if "default" in option:
                wrong.append("%s has a documented default but none in defaults/main.yml" % variable)
        elif "default" in option:
            if option["default"] != defaults[variable]:
                wrong.append("%s: documented default %r, real %r" % (variable, option["default"], defaults[variable]))
        elif not is_template(defaults[variable]):
            wrong.append("%s: the literal default %r is not documented" % (variable, defaults[variable]))
        elif not re.search(r"\bdefault", description_text(option), re.I):
            wrong.append("%s: the computed default is described nowhere" % variable)
    assert not wrong, name + ": " + "; ".join(wrong)


def test_real_defaults_pass_the_role_validation(role):
    """The literal defaults, and (filled in by the validator) every documented default, fit the option's type and choices."""
    name, defaults, options = role
    literal = dict((k, v) for k, v in defaults.items() if not is_template(v))
    result = ArgumentSpecValidator(options).validate(literal)
    assert not result.error_messages, "%s: %s" % (name, result.error_messages)
