"""The documentation stays navigable: README small with a table of contents, no dead link.

Issue 12 asks for a README of at most 25 KB whose table of contents leads to every section,
with the long material in docs/ (one file per topic). A moved heading or file must not leave a
dead link behind, so every relative link (and its #anchor) in README.md and docs/*.md is
resolved here the way GitHub renders it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 25_000  # bytes: issue 12's "README.md <= 25 KB"

_FENCE = re.compile(r"^(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings: x, x-1, x-2
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def links(path: Path) -> list[str]:
    targets: list[str] = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        targets.extend(_LINK.findall(_INLINE_CODE.sub("", line)))
    return targets


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_at_most_25_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, (
        f"README.md is {size:,} bytes (limit {README_LIMIT:,}): move the long part to docs/"
    )


def test_readme_contents_lists_every_section() -> None:
    text = README.read_text(encoding="utf-8")
    sections = [
        slug(m.group(2))
        for line in _prose_lines(text)
        if (m := _HEADING.match(line)) and len(m.group(1)) == 2
    ]
    assert "contents" in sections
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = {target[1:] for target in _LINK.findall(contents) if target.startswith("#")}
    missing = [s for s in sections if s != "contents" and s not in listed]
    assert not missing, f"README sections missing from its Contents: {missing}"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    dead: list[str] = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            dead.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            dead.append(f"{target} (no heading with that anchor in {dest.name})")
    assert not dead, f"{path.relative_to(ROOT)}: dead links: {dead}"


def test_slug_matches_github() -> None:
    assert slug("Field catalogue, readings and `decode`") == "field-catalogue-readings-and-decode"
    assert slug("Telegraf → InfluxDB") == "telegraf--influxdb"
    assert slug("Mode `udevice` (default)") == "mode-udevice-default"


def test_a_dead_link_is_found(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("# Title\n\n[ok](#title) [bad](missing.md) `[code](nowhere.md)`\n")
    assert links(doc) == ["#title", "missing.md"]
    assert anchors(doc) == {"title"}


def test_configuration_reference_lists_every_key_of_config_toml() -> None:
    """docs/configuration.md's "Every key" names each key config.toml documents, per section."""
    reference = (DOCS / "configuration.md").read_text(encoding="utf-8").split("## Every key", 1)[1]
    documented: dict[str, set[str]] = {}
    for part in reference.split("\n### ")[1:]:
        title = part.split("\n", 1)[0].strip("`[] ")
        documented[title] = set(re.findall(r"^\| `([a-z_]+)` \|", part, re.MULTILINE))
    shipped = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    missing: list[str] = []
    for section, table in shipped.items():
        for entry in table if isinstance(table, list) else [table]:
            missing += [
                f"{section}.{key}" for key in entry if key not in documented.get(section, set())
            ]
    assert not missing, f"keys of config.toml missing from docs/configuration.md: {missing}"


_MODULE_NAME = re.compile(r"\bvedirect_async(?:\.[a-z_]+)+")


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.name)
def test_every_module_named_in_the_docs_exists(path: Path) -> None:
    """A module or logger name (``vedirect_async.session``) in a page, e.g. in a sample of the
    log, is a module of the package: a page must not show lines the service no longer writes."""
    missing = []
    for name in sorted(set(_MODULE_NAME.findall(path.read_text(encoding="utf-8")))):
        parts = name.split(".")
        prefixes = [ROOT.joinpath(*parts[:n]) for n in range(2, len(parts) + 1)]
        # a module (file or package), or an attribute of one: vedirect_async.hub.subscribe
        if not any(p.with_suffix(".py").is_file() or p.is_dir() for p in prefixes):
            missing.append(name)
    assert not missing, f"{path.relative_to(ROOT)} names modules that do not exist: {missing}"
