"""Sub-commands of the ``mutualctr`` command line, one module each (see ``mutualctr.cli``)."""
