"""From scores to a cut: the budget, the cost model of MACs/params and budgeted allocations."""
from .allocation import ALLOCATIONS, allocate, check_reachable
from .budget import SCHEDULES, Budget, RoundBudget
from .cost import CostModel
from .expected_loss import ExpectedLossWidths

__all__ = ["ALLOCATIONS", "Budget", "CostModel", "ExpectedLossWidths", "RoundBudget", "SCHEDULES", "allocate",
           "check_reachable"]
