"""``hydra.sweeper._target_`` of seglab's Optuna searches (see ``seglab.sweeps.resumable_optuna``).

Hydra imports every ``hydra_plugins`` module at each start to discover plugins, so this one
imports neither optuna nor the Optuna sweeper plugin: without the ``sweeps`` extra it must still
load silently. The implementation is imported when a search actually starts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's ``OptunaSweeper`` (same settings) that can resume a study and keeps
    going after failed trials."""

    def __init__(self, **settings: Any) -> None:
        # Noise at import, before the sweep's first line: optuna 2.10 uses SQLAlchemy 1.4 APIs that
        # 2.0 removed (the sweeps extra pins sqlalchemy<2), and importing optuna sets up alembic's
        # plugins, each logged at INFO.
        os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from seglab.sweeps.resumable_optuna import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
