"""The vendors' pruning toolchains, registered with the study's shared training loop.

``study.make.train`` holds the loop and knows only gmp and the dense baseline; importing
``baselines`` (its ``__init__`` imports this module) adds ``"sparseml"`` (SparseML's
``manager.modify`` on the shared loop, :func:`baselines.sparseml.attach`) and ``"nncf"`` (Intel's
NNCF gradual magnitude pruning, :func:`baselines.nncf_prune.attach`). SparseML and NNCF themselves
are imported only when a run attaches them: they are slow to import.
"""

from __future__ import annotations

from study.make.train import Attached, register_toolchain


def attach_sparseml(recipe, model, optimizer, steps_per_epoch) -> Attached:
    from baselines.sparseml import attach

    pruner = attach(recipe, model, optimizer, steps_per_epoch)
    return Attached(optimizer=pruner.optimizer, epochs=pruner.epochs, finalize=pruner.finalize)


def attach_nncf(recipe, model, optimizer, steps_per_epoch) -> Attached:
    from baselines.nncf_prune import attach

    pruner = attach(recipe, model, optimizer, steps_per_epoch)
    return Attached(
        optimizer=pruner.optimizer,
        epochs=pruner.epochs,
        finalize=pruner.finalize,
        zeros=pruner.zeros,
        settings=lambda: pruner.settings.to_dict(),
    )


register_toolchain("sparseml", attach_sparseml)
register_toolchain("nncf", attach_nncf)
