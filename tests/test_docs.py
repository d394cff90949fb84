"""The README and the tool's messages point at things that exist: repository paths, README
sections named in hints, and no links to sites outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PATH = re.compile(r"`((?:tool|bench|emulator|tests|config|keys)/[\w./-]*|app\.py|gunicorn\.conf\.py|requirements\.txt)`")


def test_every_repository_path_the_readme_names_exists():
    named = {m.group(1).rstrip("/") for m in PATH.finditer(README)}
    assert named, "the README names no path: the pattern is wrong"
    # Files in keys/ are made on first start (the secret, the signing key): only the folder ships.
    named = {p for p in named if not p.startswith("keys/")} | {"keys"}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == [], missing


def test_the_readme_links_nowhere_outside_the_repository():
    links = re.findall(r"\]\((https?://[^)]+)\)", README)
    assert links == [], links


def test_readme_sections_named_in_the_tools_messages_exist():
    headings = set(re.findall(r"^#+ (.+)$", README, flags=re.M))
    named = set()
    for source in (ROOT / "tool").rglob("*.py"):
        named |= set(re.findall(r"README, '([^']+)'", source.read_text()))
    assert named, "no message names a README section: the pattern is wrong"
    assert named <= headings, named - headings
