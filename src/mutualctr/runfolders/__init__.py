"""Run folders: their files and lock (:mod:`.folder`), checkpoints (:mod:`.checkpoint`) and
rebuilding a finished run's models from ``model.json`` and its weights (:mod:`.restore`)."""
