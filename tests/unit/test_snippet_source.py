"""nurture.js as websites get it: under 3 KB gzipped (printed; docs/snippet.md records it), no dependencies, and
no syntax newer than ES2017, so it runs in every current browser without a build step."""

from __future__ import annotations

import gzip
import re

import pytest

from tests.support import ROOT

SNIPPET = ROOT / "layers" / "nurture" / "python" / "nurture" / "static" / "nurture.js"
BUDGET = 3_000  # 3 KB, counted strictly (not 3 KiB)
# Syntax from ES2018 and later that would break older engines: object spread/rest, optional catch binding,
# optional chaining, nullish coalescing, logical assignment, class fields, numeric separators.
NEWER_THAN_ES2017 = {
    "spread or rest (object rest/spread is ES2018)": r"\.\.\.",
    "optional catch binding (ES2019)": r"catch\s*\{",
    "optional chaining (ES2020)": r"\?\.(?!\d)",
    "nullish coalescing (ES2020)": r"\?\?",
    "logical assignment (ES2021)": r"(\|\||&&|\?\?)=",
    "numeric separator (ES2021)": r"\d_\d",
    "private class member (ES2022)": r"#[A-Za-z_]",
}


def test_the_snippet_is_under_3_kb_gzipped() -> None:
    source = SNIPPET.read_bytes()
    size = len(gzip.compress(source, compresslevel=9))
    print(f"\nnurture.js: {len(source):,} bytes, {size:,} bytes gzipped (budget {BUDGET:,})")
    assert size < BUDGET


def test_the_snippet_has_no_dependencies() -> None:
    source = SNIPPET.read_text()
    assert not re.search(r"\b(import|require)\s*\(|^\s*import\s", source, re.MULTILINE)
    assert "createElement" not in source  # loads no other script


@pytest.mark.parametrize("pattern", NEWER_THAN_ES2017.values(), ids=NEWER_THAN_ES2017.keys())
def test_the_snippet_uses_no_syntax_newer_than_es2017(pattern: str) -> None:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", SNIPPET.read_text(), flags=re.DOTALL)  # comments may say anything
    assert not re.search(pattern, code)
