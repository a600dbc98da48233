"""The documentation site (mkdocs.yml, docs/): it builds in strict mode, so a broken link, a page left
out of the nav or an API reference that cannot be resolved fails here, and its API page carries the
public functions' own docstrings. The README stays a front door: short, and linking every page."""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (mkdocs, mkdocs-material, mkdocstrings[python]) is not installed")
pytest.importorskip("material", reason="mkdocs-material (the docs extra) is not installed")
pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] (the docs extra) is not installed")

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # From the repository root, as `make docs`: docs/benchmarks.md includes BENCHMARKS.md from there.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def page_text(path: Path) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", path.read_text(), flags=re.S)
    # Without whitespace: tags split words differently from the Markdown they came from.
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


def test_docs_site_builds_strictly_with_every_page(site):
    for page in sorted((ROOT / "docs").glob("*.md")):
        built = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert built.is_file(), f"docs/{page.name} was not built"


def test_docs_site_api_page_carries_the_docstrings(site):
    import xception
    from xception.description import WeightsDescription
    from xception.explain import explain
    from xception.inference.session import InferenceSession
    from xception.models.spec import ModelSpec
    from xception.models.trained import open_weights, read_description, save_trained
    from xception.train import fit

    api = page_text(site / "api" / "index.html")
    for obj in (xception.create_model, open_weights, save_trained, read_description, ModelSpec,
                WeightsDescription, fit, explain, InferenceSession):
        # The whole docstring, each paragraph as written (Markdown renders `code` as <code>).
        for paragraph in inspect.getdoc(obj).split("\n\n"):
            assert re.sub(r"\s+", "", paragraph.replace("`", "")) in api, f"{obj.__qualname__}: {paragraph!r}"
        assert obj.__name__ in api


def test_docs_site_includes_benchmarks_md(site):
    benchmarks = page_text(site / "benchmarks" / "index.html")
    for heading in re.findall(r"^## (.+)$", (ROOT / "BENCHMARKS.md").read_text(), flags=re.M):
        assert re.sub(r"\s+", "", heading.replace("`", "")) in benchmarks, heading


@pytest.mark.parametrize(("pages", "named"), [
    ({"index.md": "# Home\n\nSee [the missing page](missing.md).\n"}, "missing.md"),
    ({"index.md": "# Home\n\nSee [a section](other.md#no-such-section).\n", "other.md": "# Other\n"}, "no-such-section"),
    ({"index.md": "# Home\n", "other.md": "# Other\n", "left_out.md": "# Left out\n"}, "left_out.md"),
], ids=["broken-link", "broken-anchor", "page-not-in-nav"])
def test_docs_site_strict_build_fails_on(pages, named, tmp_path):
    # The project's own configuration (its validation settings) on pages with one fault each.
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in pages.items():
        (docs / name).write_text(text)
    nav = "".join(f"  - {name}\n" for name in ("index.md", "other.md") if name in pages)
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nnav:\n{nav}plugins: []\n")
    result = build(config, tmp_path / "site")
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_readme_is_a_short_front_door_linking_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README is a front door: figures go to BENCHMARKS.md or docs/"
    links = set(re.findall(r"\]\(([^)#]+)", readme))
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name in {"index.md", "benchmarks.md"}:  # the site's home page, and BENCHMARKS.md itself
            continue
        assert f"docs/{page.name}" in links, f"README links docs/{page.name}"
    assert "BENCHMARKS.md" in links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links {link}, which does not exist"
