"""Read a run directory back: configuration, per-round metrics, posteriors and keep tables."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunDirError
from ..runs import RUN_MARKER


@dataclass
class RoundPosterior:
    """One round's posterior files: the arviz InferenceData and the per-channel keep table."""

    round: int
    netcdf: Path
    table: list[dict]  # rows of keep_probability_round<r>.csv, numbers as floats

    def inference_data(self):
        import arviz as az

        return az.from_netcdf(self.netcdf)


@dataclass
class RunRecord:
    path: Path
    config: dict
    base: dict
    rounds: list[dict]  # the metrics' round events, completed with summary.json (AUROC/Brier) when present
    finished: bool  # summary.json exists: the run reached its end
    posteriors: list[RoundPosterior] = field(default_factory=list)

    @property
    def criterion(self) -> str:
        return self.config["config"]["criterion"]


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    if not (path / RUN_MARKER).is_file():
        raise RunDirError(f"{path} is not a bayesprune run directory (no {RUN_MARKER}); "
                          "pass the --out directory of a `bayesprune run`")
    try:
        config = json.loads((path / RUN_MARKER).read_text())
        events = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
        summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"cannot read the run in {path} ({exc}); it is damaged, rerun it") from None
    base = next((e for e in events if e.get("event") == "base"), None)
    rounds = [e for e in events if e.get("event") == "round"]
    if base is None or not rounds:
        raise RunDirError(f"the run in {path} has no finished round yet; report it once a round has ended")
    if summary:  # prediction scores are computed when the run ends
        scored = {r["round"]: r for r in summary["rounds"]}
        for record in rounds:
            for key in ("prediction_auroc", "prediction_brier"):
                record[key] = scored.get(record["round"], {}).get(key)
    posteriors = []
    for record in rounds:
        netcdf = path / f"posterior_round{record['round']}.nc"
        table = path / f"keep_probability_round{record['round']}.csv"
        if netcdf.is_file() and table.is_file():
            posteriors.append(RoundPosterior(record["round"], netcdf, _read_table(table)))
    return RunRecord(path, config, base, rounds, summary is not None, posteriors)


def _read_table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key != "layer":
                row[key] = float(value)
    return rows
