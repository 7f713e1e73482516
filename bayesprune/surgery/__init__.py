"""Surgery and reparameterization around the physical cut: fold, compensate, widen."""
from .compensate import METHODS as COMPENSATIONS
from .compensate import compensate
from .expand import widen
from .fold import fold_gates

__all__ = ["COMPENSATIONS", "compensate", "fold_gates", "widen"]
