"""The documentation checked against the code, so that it cannot drift from it unnoticed:
docs/configuration.md documents exactly the fields of Config, with their defaults; every
relative link (and #anchor) in README.md and docs/ resolves; every `python -m` module and
every scdepth-* command named there exists; the README stays a front door (short, and no
commit hashes: measured figures live in benchmarks/RESULTS.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from scdepth.config import Config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
README_MAX_LINES = 300


def pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def page_ids():
    return [p.relative_to(ROOT).as_posix() for p in pages()]


# --- Markdown helpers ------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~)")


def prose_lines(text: str):
    """The lines outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def table_rows(text: str, first_header: str):
    """The cells of the body rows of every table whose first header cell is `first_header`."""
    rows, inside = [], False
    for line in prose_lines(text):
        if not line.lstrip().startswith("|"):
            inside = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_header:
            inside = True
        elif inside and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(text: str) -> list[str]:
    """Link and image targets, outside code blocks and inline code."""
    prose = "\n".join(re.sub(r"`[^`]*`", "", line) for line in prose_lines(text))
    return LINK.findall(prose)


# --- the configuration reference -------------------------------------------------------------


def documented_settings() -> dict[str, str]:
    """{key: documented default} from the tables of configuration.md headed `key`."""
    rows = table_rows(CONFIG_DOC.read_text(encoding="utf-8"), "key")
    out = {}
    for cells in rows:
        m = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[0])
        assert m, f"configuration.md: a key cell should be one `name`, got {cells[0]!r}"
        assert m.group(1) not in out, f"configuration.md documents {m.group(1)} twice"
        assert len(cells) >= 3, f"configuration.md: {m.group(1)} needs a default and a meaning"
        out[m.group(1)] = cells[1]
    return out


def test_configuration_documents_every_config_field_and_nothing_else():
    fields = {f.name for f in dataclasses.fields(Config)}
    documented = set(documented_settings())
    assert not fields - documented, (
        f"Config fields missing in docs/configuration.md: {sorted(fields - documented)}"
    )
    assert not documented - fields, (
        f"docs/configuration.md documents keys Config lacks: {sorted(documented - fields)}"
    )


def _value(cell: str):
    text = cell.strip().strip("`")
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-4 as a string
        except ValueError:
            return value
    return value


def test_configuration_defaults_match_config():
    defaults = Config()
    for key, cell in documented_settings().items():
        if not hasattr(defaults, key):
            continue  # reported by the test above
        actual = getattr(defaults, key)
        if isinstance(actual, tuple):
            actual = list(actual)
        assert _value(cell) == actual, (
            f"docs/configuration.md: {key} default {cell}, Config has {actual!r}"
        )


# --- links, modules, commands ----------------------------------------------------------------


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_relative_links_resolve(page):
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.name}: broken links: {broken}"


PYTHON_M = re.compile(r"\b(?:python3?|torchrun)\b[^\n`]*?\s-m\s+([A-Za-z_][\w.]*)")


def test_python_m_modules_exist():
    named = {m for page in pages() for m in PYTHON_M.findall(page.read_text(encoding="utf-8"))}
    assert named, "expected `python -m` commands in the README and docs"
    sys.path.insert(0, str(ROOT))
    try:
        missing = sorted(m for m in named if importlib.util.find_spec(m) is None)
    finally:
        sys.path.remove(str(ROOT))
    assert not missing, f"README/docs name modules that do not exist: {missing}"


def test_commands_named_are_installed_scripts():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    scripts = set(re.findall(r"^(scdepth-[a-z]+(?:-[a-z]+)*)\s*=", pyproject, re.MULTILINE))
    assert scripts, "no scdepth-* scripts found in pyproject.toml"
    named = {
        c
        for page in pages()
        for c in re.findall(r"\bscdepth-[a-z]+(?:-[a-z]+)*\b", page.read_text(encoding="utf-8"))
    }
    assert not named - scripts, (
        f"README/docs name commands that pyproject.toml lacks: {sorted(named - scripts)}"
    )
    assert not scripts - named, f"commands without documentation: {sorted(scripts - named)}"


# --- the README as a front door --------------------------------------------------------------


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; details belong in docs/"


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_no_commit_hashes(page):
    """Figures tied to commits belong in benchmarks/RESULTS.md, which records the machine
    and the commit of each; the README and docs link there."""
    words = re.findall(r"\b[0-9a-f]{7,40}\b", page.read_text(encoding="utf-8"))
    hashes = [w for w in words if re.search(r"[a-f]", w) and re.search(r"[0-9]", w)]
    assert not hashes, f"{page.name}: commit hashes {hashes}; move the figures to RESULTS.md"
