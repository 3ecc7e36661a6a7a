"""Sweeps (``python train.py -m ...``): everything seglab adds to Hydra's multirun.

- :mod:`seglab.sweeps.context`: is this a multirun job, its sweep folder, and the overrides that
  vary between the jobs (used by W&B run names and by the sweep summary);
- :mod:`seglab.sweeps.ddp`: multirun x DDP (each job's extra processes run that job only);
- :mod:`seglab.sweeps.summary`: the Hydra callbacks of ``conf/hydra/default.yaml`` (the sweep
  summary table, ``${hydra:...}`` in the sweep folder);
- :mod:`seglab.sweeps.resumable_optuna`: the Optuna search of ``conf/hparams_search/`` (resumable,
  survives failed trials), loaded through the thin ``hydra_plugins.seglab_plugins`` shim.

Nothing here imports optuna at import time except ``resumable_optuna`` (the ``sweeps`` extra).
"""
