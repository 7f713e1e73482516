"""User-facing errors: each names the problem and the fix in one line; the CLI exits 2 on them."""


class BayesPruneError(Exception):
    """A mistake in the user's input or environment that they can fix (exit code 2 from the CLI)."""


class ConfigError(BayesPruneError):
    """An option's value is out of its range, unknown, or inconsistent with another option."""


class DataError(BayesPruneError):
    """A data set is missing, malformed or incompatible with the model."""


class ModelError(BayesPruneError):
    """A model name, factory or checkpoint cannot be used."""


class BudgetError(BayesPruneError):
    """A pruning budget is malformed or cannot be met."""


class TrainingError(BayesPruneError):
    """Training produced a non-finite loss or otherwise cannot continue."""


class RunDirError(BayesPruneError):
    """The output directory cannot be used for this run."""
