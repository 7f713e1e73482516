"""The Bayesian core: GSM priors over channel gates, Pyro inference, posterior decisions."""
import warnings

# arviz 0.23 announces its coming refactor on import and when it adds chain/draw dims; neither
# concerns users of bayesprune, whose InferenceData layout is fixed here.
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
warnings.filterwarnings("ignore", message="the default dims 'chain' and 'draw'")

from .inference import SVIConfig, draw_from_guide, fit_svi  # noqa: E402
from .priors import PRIORS, ScalePrior, make_prior  # noqa: E402

__all__ = ["PRIORS", "SVIConfig", "ScalePrior", "draw_from_guide", "fit_svi", "make_prior"]
