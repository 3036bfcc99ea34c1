"""Which of a store's fields a model reads: ``model_config.exclude_fields``.

One store serves models with and without some fields (e.g. a model without the behaviour
histories ``hist_item`` and ``hist_genre``, as the control of the same model with them). An
excluded field gets no embedding rows and no input: :class:`ModelInputs` holds the feature map
the model is built from (the store's, less the excluded fields) and the columns of the store's
batches that hold its fields; every :class:`~mutualctr.models.embedding.FeatureEmbedding`
selects them from the batch it is given (:meth:`ModelInputs.select`), so groups sharing an
embedding, batched groups, TorchRec's sharded tables and exported models all take the store's
batches as they are. A kept field that shares the rows of an excluded one (``hist_item`` when
``item`` is excluded) gets rows of its own.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError

EXCLUDE_KEY = "model_config.exclude_fields"


@dataclass(frozen=True)
class ModelInputs:
    """The fields a model reads out of a store's batches.

    Attributes:
        store: the store's feature map (the layout of the batches the model is given).
        feature_map: the fields the model reads, in the store's order.
        categorical, sequences, numeric: their positions in the batch's categorical columns,
            sequence tensors and numeric columns.
    """

    store: FeatureMap
    feature_map: FeatureMap
    categorical: tuple[int, ...]
    sequences: tuple[int, ...]
    numeric: tuple[int, ...]

    @classmethod
    def of(cls, store: FeatureMap, exclude: Sequence[str] = ()) -> ModelInputs:
        """Every field of ``store`` but those named in ``exclude``.

        Raises:
            ConfigError: a name that is not a field of the store (naming the closest one), or
                nothing left to read.
        """
        names = [f.name for f in store.features]
        for name in exclude:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{EXCLUDE_KEY}: {name!r} is not a field of the store"
                                  f"{hint} (its fields: {', '.join(names)})")
        dropped = set(exclude)
        if dropped and dropped >= set(names):
            raise ConfigError(f"{EXCLUDE_KEY} excludes every field of the store "
                              f"({', '.join(names)}): leave the model at least one")
        kept = tuple(
            dataclasses.replace(f, share_with="") if f.share_with in dropped else f
            for f in store.features if f.name not in dropped
        )

        def positions(kind: str) -> tuple[int, ...]:
            of_kind = [f.name for f in store.features if f.type == kind]
            return tuple(i for i, name in enumerate(of_kind) if name not in dropped)

        return cls(store, FeatureMap(kept), positions("categorical"), positions("sequence"),
                   positions("numeric"))

    @property
    def excluded(self) -> tuple[str, ...]:
        """The store's fields the model does not read."""
        kept = {f.name for f in self.feature_map.features}
        return tuple(f.name for f in self.store.features if f.name not in kept)

    def select(self, batch: Batch) -> Batch:
        """``batch`` (a batch of the store) with the model's fields only."""
        if len(self.feature_map.features) == len(self.store.features):
            return batch
        return Batch(
            categorical=batch.categorical[:, list(self.categorical)],
            numeric=batch.numeric[:, list(self.numeric)],
            sequences=tuple(batch.sequences[i] for i in self.sequences),
            label=batch.label,
            prob=batch.prob,
        )


def as_inputs(inputs: FeatureMap | ModelInputs) -> ModelInputs:
    """``inputs`` as :class:`ModelInputs`: a feature map is every field of its batches."""
    return inputs if isinstance(inputs, ModelInputs) else ModelInputs.of(inputs)
