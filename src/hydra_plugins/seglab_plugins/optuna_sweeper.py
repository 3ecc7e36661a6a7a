"""``hydra.sweeper._target_`` of seglab's Optuna searches (see ``seglab.sweeps.resumable_optuna``).

Hydra imports every ``hydra_plugins`` module at each start to discover plugins, so this one
imports no optuna: without the ``sweeps`` extra it must still load silently. The implementation
is imported when a search actually starts.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """seglab's Optuna search: Hydra's sweep syntax over Optuna >= 4 (ask-and-tell), resumable,
    with pruning and several workers on one study. Settings: ``conf/hydra/sweeper/optuna.yaml``."""

    def __init__(self, **settings: Any) -> None:
        # importing optuna sets up alembic's plugins, each logged at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from seglab.sweeps.resumable_optuna import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
