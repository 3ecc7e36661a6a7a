"""seglab's Hydra plugins.

Hydra instantiates sweepers and launchers only from modules under the ``hydra_plugins`` namespace
package (``Plugins._instantiate`` rejects any other ``_target_``), so the class that
``conf/hparams_search/*.yaml`` names lives here; the logic is in ``seglab.sweeps.resumable_optuna``.
"""
