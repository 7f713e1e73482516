"""The README's result tables are the committed result files' tables (issue 7: generated, not pasted)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_their_result_files():
    text = (ROOT / "analysis" / "README.md").read_text()  # the measured tables live there (issue 17)
    assert text.count("<!-- generated from analysis/results/") >= 1
    run = subprocess.run([sys.executable, str(ROOT / "analysis" / "readme_tables.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
