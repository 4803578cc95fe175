"""Loading data stays light: no torch, no NAS.  The import graph's rules (directions between packages, no
cycle inside one) are tests/test_import_rules.py."""

import os
import subprocess
import sys

from tests.test_nas_data import write_cifar, write_tiny


LIGHT = """
import sys
import aidi.models.data as d
d.load_dataset("digits", 0)
d.load_dataset("cifar10", 0, data_dir=sys.argv[1])
d.load_dataset("tinyimagenet", 0, (3, 64, 64), data_dir=sys.argv[2])
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("aidi.models.nas"))
assert not heavy, heavy
"""


def test_loading_data_imports_neither_torch_nor_nas(tmp_path):
    """In a fresh interpreter, so that what this test session imported does not hide an import."""
    write_cifar(tmp_path / "cifar")
    write_tiny(tmp_path / "tiny")  # JPEGs, decoded by Pillow
    env = {**os.environ, "AIDI_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", LIGHT, str(tmp_path / "cifar"), str(tmp_path / "tiny")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
