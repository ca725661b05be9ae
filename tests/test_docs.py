"""The spec travels with the code: citations of docs/method.md resolve, nothing points at ../shared.

Code comments and docs cite the method as "docs/method.md §N" (docs/*.md may link it as
"[docs/method.md §N](method.md#anchor)"). Every cited section must be a heading of the
repo's docs/method.md, and no file a user's clone holds under rie_cli/ or docs/ may
send the reader to the developers' ../shared folder (tests may read it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"

# "method.md", one or more "§N[.M]" (lists: "§1, §4"), then maybe a markdown link target.
_CITATION = re.compile(r"(\S*)method\.md\s*((?:§\d+(?:\.\d+)*(?:,\s*|\s+and\s+)?)+)(?:\]\(([^)\s]*)\))?")
_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
_SHARED = re.compile(r"\.\./shared|/work/shared|(?<![\w.-])shared/")


def method_sections() -> dict[str, str]:
    """Section number -> GitHub anchor of every numbered heading of docs/method.md."""
    sections = {}
    for line in METHOD.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{2,4} (\d+(?:\.\d+)*)\.? ", line)
        if match:
            title = line.lstrip("#").strip().lower()
            sections[match.group(1)] = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
    return sections


def citation_problems(text: str, where: str, sections: dict[str, str]) -> tuple[int, list[str]]:
    """(number of sections cited, problems) for the "method.md §N" citations in `text`."""
    count, problems = 0, []
    for match in _CITATION.finditer(text):
        prefix, cited, link = match.groups()
        if not prefix.endswith("docs/"):
            problems.append(f"{where}: '{match.group(0).strip()}' must name docs/method.md")
        for number in _SECTION.findall(cited):
            count += 1
            if number not in sections:
                problems.append(f"{where}: cites §{number}, which docs/method.md does not have")
            elif link is not None and link != f"method.md#{sections[number]}":
                problems.append(f"{where}: the link of §{number} should be method.md#{sections[number]}, is {link}")
    # A bare mention without a section is fine; one pointing elsewhere is not.
    for match in re.finditer(r"(\S*)method\.md", text):
        if "shared" in match.group(1):
            problems.append(f"{where}: '{match.group(0)}' points outside the repository")
    return count, problems


def _files(*globs: str) -> list[Path]:
    return sorted(p for g in globs for p in REPO.glob(g) if p.is_file())


def test_method_doc_has_the_cited_sections():
    sections = method_sections()
    # The numbering the code was written against (and the authors' spec uses).
    for number in ("1", "2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3", "4", "5", "6"):
        assert number in sections, f"docs/method.md lacks section {number}"


def test_every_method_citation_resolves():
    sections = method_sections()
    total, problems = 0, []
    files = _files("rie_cli/**/*.py", "docs/*.md", "README.md", "benchmarks/**/*.py", "scripts/**/*", "tests/*.py")
    for path in files:
        if path in (METHOD, Path(__file__).resolve()):
            continue
        count, found = citation_problems(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)), sections)
        total += count
        problems += found
    assert not problems, "\n".join(problems)
    assert total >= 20, f"only {total} citations found: has the citation pattern changed?"


def test_citation_checker_catches_mistakes():
    sections = method_sections()
    assert citation_problems("see docs/method.md §2.2 and §5", "x", sections) == (2, [])
    assert citation_problems("[docs/method.md §3](method.md#3-training-in-three-stages)", "x", sections) == (1, [])
    for bad in ("see method.md §3", "see docs/method.md §9", "see docs/method.md §1, §7.1",
                "[docs/method.md §3](method.md#wrong)", "see ../shared/docs/method.md"):
        assert citation_problems(bad, "x", sections)[1], bad


@pytest.mark.parametrize("folder", ["rie_cli", "docs"])
def test_no_reference_to_the_shared_folder(folder):
    hits = []
    for path in _files(f"{folder}/**/*"):
        if path.suffix in (".pyc", ".png", ".gif"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SHARED.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "references to the developers' shared folder:\n" + "\n".join(hits)
    assert _SHARED.search("see ../shared/golden") and _SHARED.search("schema of shared/data/x.json")
    assert not _SHARED.search("one shared permutation")
