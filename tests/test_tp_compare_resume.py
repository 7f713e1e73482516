"""analysis/tp_compare.py --resume: keeps measured cells, refuses a file measured with other settings."""
import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))
import tp_compare  # noqa: E402


def _args(**changes):
    base = {"model": "m", "methods": "l1", "targets": "0.5", "seeds": 1, "epochs": 1.0, "out": "x",
            "resume": True, "quick": False, "table": None}
    return argparse.Namespace(**{**base, **changes})


def test_resume_keeps_rows_with_their_commits_and_refuses_other_settings(tmp_path):
    out = tmp_path / "result.json"
    row = {"method": "l1", "seed": 0, "target": 0.5, "accuracy": 0.9}
    out.write_text(json.dumps({"arguments": vars(_args(resume=False)), "commit": "abc", "rows": [row]}))
    rows, calls = tp_compare.earlier_rows(out, _args(methods="l1,l2", seeds=3, targets="0.5,0.2"))
    assert rows == [{**row, "commit": "abc"}] and calls == [vars(_args(resume=False))]
    with pytest.raises(SystemExit, match="other settings \\(epochs\\)"):
        tp_compare.earlier_rows(out, _args(epochs=2.0))
    with pytest.raises(SystemExit, match="does not exist"):
        tp_compare.earlier_rows(tmp_path / "missing.json", _args())
