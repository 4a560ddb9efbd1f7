"""The runnable examples in docs/ run, and print what the page says they print.

Strategy: a page's complete program is a ```python block that the page follows
with "Output:" and a plain block; each runs in a fresh interpreter (against the
loopback `JobmonServer` or in virtual time, as written) and its stdout must equal
that block; where the page says its times and counts vary ("Output (times ...
vary):"), the same lines with every number masked. The overview's testing
example prints nothing: it must exit 0.

Rules: the examples are the pages' own text, not copies, so a page cannot drift
from the library without failing here. They run on the real clock with
intervals of half a second and margins of a few hundred milliseconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

_EXAMPLE = re.compile(
    r"```python\n(?P<code>.*?)```\s*\n"
    r"(?:Output(?P<varies> \(.*?\))?:\s*\n+```\n(?P<output>.*?)```)?",
    re.S,
)


def _examples() -> list[tuple[str, str, str | None, bool]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _EXAMPLE.finditer(text):
            code, output = match["code"], match["output"]
            line = text.count("\n", 0, match.start()) + 1
            if output is None and "\ntest_" not in code:
                continue  # a fragment, not a program
            found.append((f"{page.name}:{line}", code, output, bool(match["varies"])))
    return found


EXAMPLES = _examples()


def test_the_examples_are_found() -> None:
    pages = {where.split(":")[0] for where, *_ in EXAMPLES}
    assert {"adapter-sync.md", "adapter-asyncio.md", "adapter-trio.md"} <= pages
    assert {"coming-from-jobmon.md", "overview.md"} <= pages


def _shape(output: str) -> str:
    """`output` with every number as `#`: what stays when times and counts vary."""
    return re.sub(r"\d+(\.\d+)?", "#", output)


@pytest.mark.parametrize(
    ("code", "output", "varies"),
    [pytest.param(*example[1:], id=example[0]) for example in EXAMPLES],
)
def test_example_runs_and_prints_its_output(
    code: str, output: str | None, varies: bool
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if output is None:
        return
    if varies:
        assert _shape(result.stdout) == _shape(output)
    else:
        assert result.stdout == output
