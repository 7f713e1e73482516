"""Regenerate the result tables of README.md and analysis/README.md from the committed result files.

Each table sits between ``<!-- generated from analysis/results/NAME.json -->`` and
``<!-- end generated -->``; this script rewrites what lies between from that file, with the
Markdown function of the script that wrote it (the result's ``script`` field).
Usage: python analysis/readme_tables.py [--check]   (--check: exit 1 if a table is stale)
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
READMES = (HERE.parent / "README.md", HERE / "README.md")
BLOCK = re.compile(r"(<!-- generated from (analysis/results/[\w.@-]+\.json) -->\n)(.*?)(<!-- end generated -->)", re.S)


def table(result_path: Path) -> str:
    result = json.loads(result_path.read_text())
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(Path(result["script"]).stem)  # tp_compare, search_train_scratch, ...
    return module.markdown(result)


def regenerate(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + table(HERE.parent / m.group(2)) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table differs from its result file")
    args = parser.parse_args()
    stale = []
    for readme in READMES:
        text = readme.read_text()
        fresh = regenerate(text)
        if fresh != text:
            stale.append(readme)
            if not args.check:
                readme.write_text(fresh)
                print(f"rewrote {len(BLOCK.findall(text))} tables in {readme}")
    if args.check:
        print(f"stale tables in {', '.join(map(str, stale))}: run python analysis/readme_tables.py" if stale
              else "README tables match")
        return int(bool(stale))
    return 0

if __name__ == "__main__":
    sys.exit(main())
