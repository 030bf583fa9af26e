# Root conftest: lets plain pytest import this checkout as ansible_collections.ceops.exchange_oauth.
#
# The repository root is the collection, but its code imports itself by the collection's full
# name. A temporary tree ansible_collections/ceops/exchange_oauth -> <repo> plus Ansible's own
# collection finder makes those imports resolve to the working tree (never an installed copy).
import atexit
import os
import shutil
import tempfile

REPO = os.path.dirname(os.path.abspath(__file__))
_BASE = tempfile.mkdtemp(prefix="ceops-collections-")
_LINK = os.path.join(_BASE, "ansible_collections", "ceops", "exchange_oauth")
os.makedirs(os.path.dirname(_LINK))
os.symlink(REPO, _LINK)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = _BASE


def _cleanup():
    # Remove the link first so rmtree can never follow it into the repository.
    os.unlink(_LINK)
    shutil.rmtree(_BASE, ignore_errors=True)


atexit.register(_cleanup)

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[_BASE])._install()

pytest_plugins = ["ceops_lab.testing"] if os.environ.get("CEOPS_NO_LAB") != "1" else []
