"""README.md and docs/*.md: every `lab.` name they mention exists, every relative link points to a file, and
the README stays short enough to read in five minutes."""
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 220
# A dotted name starting with `lab.`: not preceded by a word character, a dot, a slash or a hyphen (so
# `results/ledger`, `my.lab.x` and `co-lab.x` do not count); the trailing dot of a sentence is not part of it.
NAME = re.compile(r"(?<![\w./-])lab(?:\.[A-Za-z_]\w*)+")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def doc_files() -> list:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def resolves(name: str) -> bool:
    """Import the longest importable module prefix of `name`, then getattr the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_docs_exist():
    pages = doc_files()
    assert README.exists() and len(pages) > 1, "README.md and at least one docs/*.md page are expected"


def test_lab_names_resolve():
    missing = []
    for path in doc_files():
        for name in sorted(set(NAME.findall(path.read_text()))):
            if not resolves(name):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "names in the docs that do not resolve:\n" + "\n".join(missing)


def test_name_pattern():
    text = "`lab.study.manifest`, lab.ledger. results/ledger/ lab.train.gan.load_generator(cfg) x.lab.y"
    assert NAME.findall(text) == ["lab.study.manifest", "lab.ledger", "lab.train.gan.load_generator"]
    assert resolves("lab.adequacy.plateau") and not resolves("lab.adequacy.no_such_rule")
    assert not resolves("lab.no_such_module")


def test_relative_links_exist():
    broken = []
    for path in doc_files():
        for target in LINK.findall(path.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "relative links to missing files:\n" + "\n".join(broken)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES})"
