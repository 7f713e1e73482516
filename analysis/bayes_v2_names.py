"""How ``analysis/bayes_v2.py`` names a ``bayes`` row: the defaults that changed during issue 16
(width check, order inside the layers, compensated pricing, reparameterization, annealing target,
following the checked prediction) are written out in a row's method string, so a stored row keeps
meaning the run it was, and :func:`as_measured` runs an old name as it was measured."""
from __future__ import annotations

SETUP_REPARAMETERIZE = "mean"  # bayes_v2's SETUP: rows name their reparameterization when it differs

# bayes is named with its annealing target and its width check: both defaults changed during issue 16
# (annealing current -> final -> current; the held-out width check off -> on), so a bare "bayes" would
# mean different runs at different commits. Rows stored before the check existed are named with
# check_widths=False (spelled_out).
CHECKED, UNCHECKED = "bayes+option.check_widths=True", "bayes+option.check_widths=False"


def default_bayes() -> str:
    """The default configuration of bayes after fine-tuning, named with its width check, order inside
    the layers, compensated pricing, reparameterization and annealing target (the reference of the
    paired differences and the headline)."""
    from bayesprune.config import PruneConfig

    reparameterize = PruneConfig().reparameterize
    return (f"{_default_check()}{_default_within()}{_default_compensated(reparameterize)}"
            f"{_default_reparameterization()}+anneal_target={PruneConfig().anneal_target}"
            f"{_default_follow(PruneConfig())}")


def default_post(reparameterize: str, today: bool = True) -> str:
    """The default configuration of bayes without fine-tuning, with ``reparameterize``: today's, or with
    ``today=False`` the one before stop 42 (no adaptive BatchNorm after the cuts, the width check's tie
    rule at 2 standard errors), the reference of rows measured without adaptation."""
    from bayesprune.config import PruneConfig

    config = PruneConfig(epochs=0.0)
    adapt = "+adapt_batchnorm=True" if today and config.adapts_batchnorm else ""
    return (f"{_default_check()}{_default_within()}{_default_compensated(reparameterize)}"
            f"+reparameterize={reparameterize}{_default_follow(config)}{adapt}"
            f"{_default_check_z(config) if today else ''}")


MEASURED_CHECK_Z = 2.0  # rows naming no check_z ran with this margin (the only one until stop 42)


def _default_check_z(config) -> str:
    """``+option.check_z=Z`` when bayes's width check under ``config`` uses another margin than rows
    naming none ran with (:func:`as_measured`)."""
    from bayesprune.criteria import BayesLaplace

    check = BayesLaplace.from_config(config).width_check
    return "" if check is None or check.z == MEASURED_CHECK_Z else f"+option.check_z={check.z:g}"


def _default_follow(config) -> str:
    """``+option.follow_prediction=True`` when bayes follows the checked prediction by default under
    ``config`` (rows naming no ``follow_prediction`` ran without it: :func:`as_measured`)."""
    from bayesprune.criteria import BayesLaplace

    return "+option.follow_prediction=True" if BayesLaplace.from_config(config).follow_prediction else ""


# Rows that name no ``within`` ran with l2 inside the layers and, naming no ``compensated``, without the
# compensated pricing: the defaults until stop 29 (as_measured runs such names so).
MEASURED_WITHIN = "l2"


def _default_within() -> str:
    """``+within=`` today's default when it is not what rows naming none ran with."""
    from bayesprune.config import PruneConfig

    return "" if PruneConfig().within == MEASURED_WITHIN else f"+within={PruneConfig().within}"


def _default_compensated(reparameterize: str) -> str:
    """``+option.compensated=True`` when today's default prices widths after the refit under ``reparameterize``."""
    from bayesprune.criteria import BayesLaplace

    return "+option.compensated=True" if BayesLaplace(reparameterize=reparameterize).compensated else ""


def adapts(method: str) -> bool:
    """Whether ``method`` names the run's adaptive BatchNorm (``+adapt_batchnorm=True``; the criterion
    option ``option.adapt_batchnorm`` is the width check's alone)."""
    return "adapt_batchnorm=True" in method.split("+")


def as_measured(method: str) -> str:
    """``method`` as it is run: a row naming no ``adapt_batchnorm`` ran without adaptive BatchNorm (the
    default without fine-tuning since stop 42); a bayes row naming no ``within``, ``compensated``,
    ``follow_prediction`` or ``check_z`` ran with l2 inside the layers, without compensated pricing,
    without following the prediction and with the width check's margin of 2 standard errors, whatever
    today's defaults are."""
    if not any(pair.startswith("adapt_batchnorm=") for pair in method.split("+")):
        method += "+adapt_batchnorm=False"
    if method.split("+")[0].split("@")[0] != "bayes":
        return method
    if "+within=" not in method:
        method += f"+within={MEASURED_WITHIN}"
    if "compensated=" not in method:
        method += "+option.compensated=False"
    if "follow_prediction=" not in method:
        method += "+option.follow_prediction=False"
    if "check_z=" not in method:
        method += f"+option.check_z={MEASURED_CHECK_Z:g}"
    return method


def _default_reparameterization() -> str:
    """``+reparameterize=`` today's default when it is not the set-up's (rows name theirs when they
    differ from bayes_v2's ``SETUP``; the default became ``lsq`` after these rows were measured with ``mean``)."""
    from bayesprune.config import PruneConfig

    default = PruneConfig().reparameterize
    return "" if default == SETUP_REPARAMETERIZE else f"+reparameterize={default}"


def _default_check() -> str:
    """``bayes`` with today's default of its width check spelled out."""
    import inspect

    from bayesprune.criteria import BayesLaplace

    return CHECKED if inspect.signature(BayesLaplace).parameters["check_widths"].default else UNCHECKED


def spelled_out(row: dict) -> dict:
    """A stored row, named as :func:`spelled` names it. Rows measured before the default annealing
    target became ``final`` (up to commit 2c8776e) carry none in their name: theirs was ``current``,
    the default then; rows measured before the width check existed (up to commit 76722c9) carry no
    ``check_widths``: they ran without it."""
    return {**row, "method": spelled(row["method"], row["regime"], "current", False)}


def spelled(method: str, regime: str, target: str | None = None, check: bool | None = None) -> str:
    """``method`` with bayes's width check (default: today's) and, after fine-tuning, its annealing
    target (default: today's) written out when it names none (``bayes@...`` has fixed widths: no check)."""
    if method.split("+")[0] == "bayes" and "check_widths=" not in method:
        rest = method.partition("+")[2]
        flag = (CHECKED if check else UNCHECKED) if check is not None else _default_check()
        method = flag + (f"+{rest}" if rest else "")
    return with_target(method, regime, target)


def with_target(method: str, regime: str, target: str | None = None) -> str:
    """``method`` with ``+anneal_target=`` ``target`` (default: today's default) when it is bayes after
    fine-tuning and names none."""
    from bayesprune.config import PruneConfig

    if not fine_tuned(regime) or method.split("+")[0].split("@")[0] != "bayes" or "anneal_target=" in method:
        return method
    return f"{method}+anneal_target={target or PruneConfig().anneal_target}"


def fine_tuned(regime: str) -> bool:
    """Whether cells of ``regime`` fine-tune (with or without distillation)."""
    return regime.startswith("fine-tune")
