"""The repository stands alone: every file its Markdown links to, and every `*.md` file its code,
docs, charts and examples name, is in the repository.

A reference to a document that is not here (a design note kept elsewhere, a page that was
renamed) leaves the reader with nowhere to go; this test names each one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# [text](target) in Markdown; the target's anchor and query are not part of the path.
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Code spans and fenced blocks hold regexes and shell, not links.
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
# A Markdown file named anywhere in text, as a bare name or a relative path.
_MD_NAME = re.compile(r"(?<![\w./-])((?:\.{0,2}/)?[\w./-]*[\w-]+\.md)\b")


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [ROOT / line for line in out.splitlines() if line]


def _resolves(source: Path, target: str) -> bool:
    """A name resolves from the file's folder, from the repository root, or as a bare file name
    that some tracked file carries (docstrings say `backups.md` meaning docs/backups.md)."""
    target = target.split("#", 1)[0].split("?", 1)[0]
    if not target:
        return True
    if (source.parent / target).exists() or (ROOT / target.lstrip("/")).exists():
        return True
    if "/" not in target:
        return any(p.name == target for p in _tracked_files())
    return False


def test_markdown_links_point_at_files_in_the_repository() -> None:
    broken = []
    for path in _tracked_files():
        if path.suffix != ".md":
            continue
        for target in _LINK.findall(_CODE.sub("", path.read_text(encoding="utf-8"))):
            if "://" in target or target.startswith(("mailto:", "#")):
                continue
            if not _resolves(path, target):
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "links to files the repository does not contain:\n" + "\n".join(broken)


def test_no_file_names_a_markdown_document_the_repository_lacks() -> None:
    missing = []
    for path in _tracked_files():
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".sh", ".tpl", ".txt", ".toml"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in set(_MD_NAME.findall(text)):
            if "://" in name or not _resolves(path, name):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "documents named but not in the repository:\n" + "\n".join(missing)
