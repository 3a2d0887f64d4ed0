"""The manual holds together: every link and every file it names exists, and neither it nor the
code sends a reader to a folder outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A path the text names in backticks or plainly: under one of the repository's own folders.
NAMED = re.compile(r"(?<![\w./-])((?:bench|client_sut|docs|server|tests|deploy|docker|"
                   r"loadgen_configs)/[\w./-]*\w)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_named_file_exists(page):
    text = page.read_text(encoding="utf-8")
    links = [m for m in LINK.findall(text) if "://" not in m and not m.startswith("mailto:")]
    missing = [link for link in links if not (page.parent / link).exists()]
    named = {m.rstrip(".") for m in NAMED.findall(text)}
    missing += [name for name in sorted(named)
                if not (REPO / name).exists() and not any(REPO.glob(name))]
    assert not missing, f"{page.name} names what does not exist: {missing}"


def test_nothing_points_outside_the_repository():
    sources = [*PAGES, *REPO.glob("client_sut/**/*.py"), *REPO.glob("server/**/*.py")]
    outside = [str(p.relative_to(REPO)) for p in sources if "../shared" in p.read_text()]
    assert not outside, outside


def test_the_dialect_flag_names_every_known_kind():
    from client_sut.cli import build_parser
    from client_sut.dialect import KNOWN

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    [dialect] = [a for a in run._actions if "--dialect" in a.option_strings]
    assert f"the servers' kind ({', '.join(KNOWN)})" in dialect.help
