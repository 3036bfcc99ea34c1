"""``mutualctr tune``: Optuna searches over a training command's config (see ``study.py``)."""
