"""What the package tests share: the five .debs, built once per session by dpkg-buildpackage from a copy of
the tree (only when FERRY_PACKAGE_TESTS=1: each test file that needs them is skipped otherwise)."""
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from ferry_harness import REPO  # noqa: E402

COPY_IGNORE = shutil.ignore_patterns("build", "build-*", ".git", ".dev", "obj-*", "__pycache__", "*.deb")

@pytest.fixture(scope="session")
def debs():
    """(package name -> .deb path, the work directory)."""
    # One fixed directory per checkout: the compiler cache then serves a rebuild (paths are in the flags).
    work = os.path.join(tempfile.gettempdir(), "ferry-deb-" + hashlib.sha1(REPO.encode()).hexdigest()[:8])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "ferry")
    shutil.copytree(REPO, src, ignore=COPY_IGNORE, symlinks=True)
    # Optimisation off: the package is built to be checked, and an unoptimised build takes half the time.
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"noopt nocheck noautodbgsym parallel={os.cpu_count() or 2}")
    if shutil.which("ccache"):  # debhelper gives the build a HOME of its own, and with it an empty cache
        env["CCACHE_DIR"] = subprocess.run(["ccache", "-k", "cache_dir"], capture_output=True, text=True).stdout.strip()
    start = time.monotonic()
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, capture_output=True,
                       text=True, timeout=3000)
    print(f"dpkg-buildpackage took {time.monotonic() - start:.0f} s")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    found = {os.path.basename(p).split("_")[0]: p for p in glob.glob(os.path.join(work, "*.deb"))}
    yield found, work
    shutil.rmtree(work, ignore_errors=True)
