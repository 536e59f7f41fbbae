"""driftrec training-side tools: the event format, loaders, cleaning, the evaluator and baselines.

Everything here runs offline (training, evaluation, export, reports); the serving path is C.
The one evaluator in :mod:`driftrec_train.evaluate` is the reference every model claim is
measured with, so its rules are pinned and documented in docs/evaluation.md.
"""

__all__ = ["events", "loaders", "clean", "datasets", "evaluate", "baselines"]
