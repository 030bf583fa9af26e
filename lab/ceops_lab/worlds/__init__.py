"""Named worlds: seeds the lab can start with instead of the shipped ones (seed.json, ce_seed.json).

    python -m ceops_lab start --world brownfield

A world is a directory here holding seed.json (the Microsoft directories), ce_seed.json (the CE deployments) and
world.json (what the world is for: its directories and CE tenants, and what a correct converge does with each; see
lab/README.md). "default" is the shipped seeds.
"""

import json
import os

from ..ce_portal_state import CE_SEED_ENV
from ..state import SEED_ENV

WORLD_ENV = "CEOPS_LAB_WORLD"
DEFAULT = "default"
HERE = os.path.dirname(os.path.abspath(__file__))


def names():
    return [DEFAULT] + sorted(n for n in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, n, "seed.json")))


def path(name):
    if name not in names() or name == DEFAULT:
        raise ValueError("no lab world %r (worlds: %s)" % (name, ", ".join(names())))
    return os.path.join(HERE, name)


def describe(name):
    """world.json of a world ({} for the default world)."""
    if name == DEFAULT:
        return {}
    with open(os.path.join(path(name), "world.json"), encoding="utf-8") as handle:
        return json.load(handle)


def install(name):
    """Make this process's lab load the world's seeds (call before the Lab is built)."""
    os.environ[WORLD_ENV] = name
    if name == DEFAULT:
        return
    directory = path(name)
    os.environ[SEED_ENV] = os.path.join(directory, "seed.json")
    os.environ[CE_SEED_ENV] = os.path.join(directory, "ce_seed.json")


def current():
    """The world this process's lab loads ("default" unless install() chose another, "fleet" for a generated fleet)."""
    return os.environ.get(WORLD_ENV, DEFAULT)
