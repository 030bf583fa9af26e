# -*- coding: utf-8 -*-
"""docs/README.md is the docs index: it links every guide and every page of the generated reference, and every link in
it leads to a file that exists."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")


def index_links():
    with open(os.path.join(DOCS, "README.md")) as handle:
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", handle.read())
    return set(t for t in targets if not re.match(r"[a-z]+:", t))


def test_index_links_every_guide():
    guides = set(f for f in os.listdir(DOCS) if f.endswith(".md") and f != "README.md")
    assert sorted(guides - index_links()) == []


def test_index_links_the_whole_generated_reference():
    generated = set("collection/" + f for f in os.listdir(os.path.join(DOCS, "collection")) if f.endswith(".rst"))
    assert "collection/index.rst" in generated
    assert sorted(generated - index_links()) == []


def test_index_links_lead_somewhere():
    assert sorted(t for t in index_links() if not os.path.exists(os.path.join(DOCS, t))) == []
