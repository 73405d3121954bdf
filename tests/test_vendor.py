"""The vendored front-end files match the packages pinned in package-lock.json (no npm needed to check)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "docs" / "assets" / "vendor" / "codemirror.js"
AXE = REPO / "tests" / "browser" / "vendor" / "axe.min.js"


def lock() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "package-lock.json").read_text())
    return data


def bundled_versions() -> dict[str, str]:
    header = BUNDLE.read_text(encoding="utf-8")[:4000]
    match = re.search(r"^ \* packages: (\{.*\})$", header, re.M)
    assert match, "the bundle has no list of the packages it was built from: rebuild it with `make vendor`"
    versions: dict[str, str] = json.loads(match.group(1))
    return versions


def test_the_lockfile_matches_package_json() -> None:
    manifest = json.loads((REPO / "package.json").read_text())
    root = lock()["packages"][""]
    assert root.get("dependencies", {}) == manifest["dependencies"]
    assert root.get("devDependencies", {}) == manifest["devDependencies"]


def test_the_codemirror_bundle_was_built_from_the_pinned_versions() -> None:
    packages = lock()["packages"]
    pinned = {
        key.rsplit("node_modules/", 1)[1]: entry["version"]
        for key, entry in packages.items()
        if key.startswith("node_modules/") and not entry.get("dev") and not entry.get("optional")
    }
    assert bundled_versions() == pinned, "the bundle and package-lock.json disagree: run `make vendor`"
    for name in ("@codemirror/view", "@codemirror/state", "@codemirror/lang-python", "@lezer/python"):
        assert name in pinned


def test_axe_is_the_pinned_version() -> None:
    version = lock()["packages"]["node_modules/axe-core"]["version"]
    assert AXE.read_text(encoding="utf-8")[:200].startswith(f"/*! axe v{version}\n"), "run `make vendor`"
