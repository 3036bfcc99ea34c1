"""Objectives: how a group's outputs become a loss and named predictions (one module each).

See :mod:`mutualctr.training.objectives.base` for the contract.
"""
