"""Sweeps (``python train.py -m ...``): everything seglab adds to Hydra's multirun.

- :mod:`seglab.sweeps.context`: is this a multirun job, its sweep folder, and the overrides that
  vary between the jobs (used by W&B run names and by the sweep summary);
- :mod:`seglab.sweeps.ddp`: multirun x DDP (each job's extra processes run that job only);
- :mod:`seglab.sweeps.summary`: the Hydra callbacks of ``conf/hydra/default.yaml`` (the sweep
  summary table, ``${hydra:...}`` in the sweep folder);
- the Optuna search of ``conf/hparams_search/`` (``sweeps`` extra), loaded through the thin
  ``hydra_plugins.seglab_plugins`` shim: :mod:`~seglab.sweeps.resumable_optuna` (the sweeper's
  ask-and-tell loop), :mod:`~seglab.sweeps.launching` (trials as the launcher's jobs),
  :mod:`~seglab.sweeps.seeding` (a sampler seed per trial),
  :mod:`~seglab.sweeps.search_space` (Hydra's sweep syntax as distributions),
  :mod:`~seglab.sweeps.budget` (``n_trials`` over workers), :mod:`~seglab.sweeps.workers` (dead
  workers' trials), :mod:`~seglab.sweeps.retry` (their copies continue from their checkpoints),
  :mod:`~seglab.sweeps.storage` (sqlite, PostgreSQL, journal; heartbeat),
  :mod:`~seglab.sweeps.results` (``optimization_results.yaml``) and
  :mod:`~seglab.sweeps.trial` (the job's side: pruning).

Only the Optuna modules import optuna, and :mod:`~seglab.sweeps.trial` (imported by every
training run) imports it only inside a trial.
"""
