"""From scores to a cut: the cost model of MACs/params and budgeted allocations."""
from .allocation import ALLOCATIONS, Budget, allocate, check_reachable
from .cost import CostModel

__all__ = ["ALLOCATIONS", "Budget", "CostModel", "allocate", "check_reachable"]
