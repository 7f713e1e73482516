"""From scores to a cut: the cost model of MACs/params and budgeted allocations."""
from .allocation import ALLOCATIONS, Budget, allocate, check_reachable
from .cost import CostModel
from .expected_loss import ExpectedLossWidths

__all__ = ["ALLOCATIONS", "Budget", "CostModel", "ExpectedLossWidths", "allocate", "check_reachable"]
