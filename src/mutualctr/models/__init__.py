"""CTR models: one file per model, looked up by name through :mod:`mutualctr.models.registry`."""
