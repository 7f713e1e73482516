"""Reports of a run directory: HTML with figures, a Markdown summary, arviz diagnostics."""
from .build import build_report
from .diagnostics import Diagnostics, diagnose
from .load import RunRecord, load_run

__all__ = ["build_report", "diagnose", "Diagnostics", "load_run", "RunRecord"]
