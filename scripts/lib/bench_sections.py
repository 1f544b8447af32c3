"""The sections of BENCHMARKS.md that a `BENCH_ONLY` run rewrites on its own
(Python 3 standard library only)."""

from __future__ import annotations

from pathlib import Path


def replace_section(text: str, heading: str, new: str) -> str:
    """`text` with the section under `heading` (up to the next `## `)
    replaced by `new`, or `new` put before `## Commands` when there is none."""
    start = text.find(heading)
    if start < 0:
        at = text.find("## Commands")
        at = len(text) if at < 0 else at
        return text[:at] + new + "\n" + text[at:]
    end = text.find("\n## ", start + len(heading))
    end = len(text) if end < 0 else end + 1
    return text[:start] + new + "\n" + text[end:]


def write_section(out: str, heading: str, new: str) -> bool:
    """Replaces the section under `heading` of the file `out` with `new` (the
    file is made when absent). Answers whether there was a file to write."""
    if not out:
        return False
    path = Path(out)
    old = path.read_text() if path.exists() else "# Benchmarks\n\n## Commands\n"
    path.write_text(replace_section(old, heading, new))
    return True
