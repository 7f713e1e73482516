"""``bayesprune plan``: the posterior-predictive budget curve and the budget the evidence chooses."""
from .evidence import channel_log_evidence_change, evidence_curve, gaussian_reduction, spike_reduction
from .planner import DEFAULT_FRACTIONS, PlanConfig, make_plan, write_plan

__all__ = ["DEFAULT_FRACTIONS", "PlanConfig", "channel_log_evidence_change", "evidence_curve", "gaussian_reduction",
           "make_plan", "spike_reduction", "write_plan"]
