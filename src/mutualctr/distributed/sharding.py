"""Embedding tables sharded over processes with TorchRec (``train.sharding``).

Under ``torchrun`` with ``train.sharding: table_wise`` or ``row_wise``, every
:class:`~mutualctr.models.embedding.FeatureEmbedding` of the trained modules is replaced by a
:class:`ShardedFeatureEmbedding`: one TorchRec table per feature (a feature that
``share_with`` another reads that feature's table) in an ``EmbeddingBagCollection`` that
``DistributedModelParallel`` shards, whole tables spread over the processes (table-wise) or
every table's rows split between them (row-wise). The rest of the model stays data-parallel
(DDP). Each lookup position (a categorical field, or one position of a sequence field) is a
TorchRec feature with one id per row, so a sum-pooled bag is that row: the sharded module yields
the rows ``FeatureEmbedding`` gathers, and the same field embeddings ``[B, F, D]``.

The tables use TorchRec's ``dense`` compute kernel, whose weights are ordinary parameters
trained by the trainer's own Adam (with ``fused`` tables an optimizer runs inside backward, out
of reach of the trainer's clipping, schedule and non-finite guard; ``dense`` tables with an
in-backward optimizer are silently never updated). TorchRec's all-to-all backward divides the
tables' gradients by the number of processes, as DDP averages the others, so a sharded step
equals a DDP step; only the global gradient norm has to add the shards of every process
(:func:`mutualctr.distributed.ddp.grad_norm`).

State stays in ``FeatureEmbedding``'s single-table form: ``state_dict()`` gathers the shards
into ``table.weight`` on rank 0 (the other ranks keep their own shards, which they can load
back), and ``load_state_dict`` takes the single table and keeps each process's rows. So
checkpoints and ``model.pt`` of a sharded run are those of an unsharded one, and ``evaluate``,
``predict`` and ``export`` load the run folder without TorchRec. Both are collective: every
rank calls them at the same point.

TorchRec is imported only here and only when asked for (see :data:`INSTALL`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import PAD_ID
from mutualctr.errors import ConfigError, MutualCTRError
from mutualctr.models.embedding import Embedded, FeatureEmbedding, embedded_from_rows
from mutualctr.training.groups.batched import BatchedModelGroup

TORCHREC_VERSION = "1.8.0"
INSTALL = (
    f"pip install torch=={torch.__version__.split('+')[0]} fbgemm-gpu-cpu=={TORCHREC_VERSION} "
    f"tensordict torchmetrics tqdm pyre-extensions && pip install --no-deps "
    f"torchrec=={TORCHREC_VERSION} (fbgemm-gpu-cpu {TORCHREC_VERSION} is built for torch 2.13; "
    "torchrec's own requirement would replace it with the CUDA package fbgemm-gpu, hence "
    "--no-deps; on CUDA install fbgemm-gpu instead)"
)
SHARDED_OPTIMIZER_STATE = "sharded_state"  # per rank: its optimizer state of sharded tables
_SHARDED = "_mutualctr_sharded"  # set on the parameters that hold table shards


def require_torchrec() -> Any:
    """The ``torchrec`` module; a ConfigError giving the install steps when it is missing or
    does not load (fbgemm built for another torch fails with undefined symbols)."""
    try:
        return importlib.import_module("torchrec")
    except (ImportError, OSError) as err:
        raise ConfigError(f"train.sharding needs TorchRec {TORCHREC_VERSION}, which does not "
                          f"load ({err}). Install it with: {INSTALL}") from err


def is_sharded(param: torch.Tensor) -> bool:
    """Whether ``param`` holds this process's shard of a table (its gradient is this
    process's part of the table's gradient)."""
    return getattr(param, _SHARDED, False)


@dataclass(frozen=True)
class TableLayout:
    """``FeatureEmbedding``'s single table as per-feature tables.

    Attributes:
        starts: each table's first row in the single table (tables in row order).
        rows: each table's number of rows.
        position_tables: the table each lookup position reads: categorical fields, then every
            position of every sequence field (``FeatureEmbedding``'s gather order).
    """

    starts: tuple[int, ...]
    rows: tuple[int, ...]
    position_tables: tuple[int, ...]

    @classmethod
    def of(cls, embedding: FeatureEmbedding) -> TableLayout:
        """The layout of ``embedding``'s table from its per-feature row offsets (a feature that
        shares another's rows has that feature's offset)."""
        fmap = embedding.feature_map
        offsets = embedding.cat_offsets.tolist() + embedding.seq_offsets.tolist()
        vocab = [f.vocab_size for f in fmap.categorical + fmap.sequence]
        lengths = [1] * len(fmap.categorical) + list(embedding.seq_lens)
        starts = sorted(set(offsets))
        rows = tuple(vocab[offsets.index(start)] for start in starts)
        positions = [starts.index(off) for off, n in zip(offsets, lengths, strict=True)
                     for _ in range(n)]
        return cls(tuple(starts), rows, tuple(positions))


class ShardedFeatureEmbedding(nn.Module):
    """:class:`FeatureEmbedding`'s lookups through a TorchRec ``EmbeddingBagCollection``.

    Built from a ``FeatureEmbedding`` (whose weights :func:`shard` loads once the collection
    is sharded); ``forward``/``embed`` give what the source gives for the same weights, and
    ``state_dict``/``load_state_dict`` speak its single-table form (collectively, see the
    module's docstring).
    """

    def __init__(self, source: FeatureEmbedding) -> None:
        super().__init__()
        torchrec = require_torchrec()
        self.inputs = source.inputs  # the fields it reads of each batch (exclude_fields)
        self.feature_map = source.feature_map
        self.dim = source.dim
        self.seq_lens = list(source.seq_lens)
        self.layout = TableLayout.of(source)
        self.keys = [f"p{k}" for k in range(len(self.layout.position_tables))]
        self.bags = torchrec.EmbeddingBagCollection(
            tables=[
                torchrec.EmbeddingBagConfig(
                    name=f"t{t}", embedding_dim=self.dim, num_embeddings=rows,
                    feature_names=[key for key, table in zip(
                        self.keys, self.layout.position_tables, strict=True) if table == t],
                    pooling=torchrec.PoolingType.SUM,
                )
                for t, rows in enumerate(self.layout.rows)
            ],
            device=torch.device("meta"),
        )
        self.features = torchrec.KeyedJaggedTensor  # the collection's input type
        self.trainable = source.table.weight.requires_grad
        self.numeric_weight = source.numeric_weight
        self._order: list[int] | None = None  # lookup positions in the pooled output's order
        self.register_state_dict_post_hook(ShardedFeatureEmbedding._gather_table)
        self.register_load_state_dict_pre_hook(ShardedFeatureEmbedding._scatter_table)

    @property
    def num_fields(self) -> int:
        return self.feature_map.num_fields

    @staticmethod
    def _table_key(prefix: str, table: int) -> str:
        """The state key of table ``table`` of a collection whose keys start with ``prefix``."""
        return f"{prefix}embedding_bags.t{table}.weight"

    def forward(self, batch: Batch) -> torch.Tensor:
        """Field embeddings ``[B, F, D]``."""
        return self.embed(batch).fields

    def embed(self, batch: Batch) -> Embedded:
        """Field embeddings plus each sequence's rows and mask, as ``FeatureEmbedding.embed``."""
        batch = self.inputs.select(batch)
        ids = torch.cat([batch.categorical, *batch.sequences], dim=1)  # [B, positions]
        size, positions = ids.shape
        common = _largest_batch(size, ids.device)
        if common > size:  # padding rows look up the padding id; their rows are dropped
            ids = torch.cat([ids, ids.new_full((common - size, positions), PAD_ID)])
        features = self.features(
            keys=self.keys, values=ids.t().reshape(-1),
            lengths=torch.ones(common * positions, dtype=torch.int32, device=ids.device),
            stride=common,
        )
        pooled = self.bags(features)
        if self._order is None:
            found = pooled.keys()
            self._order = [found.index(key) for key in self.keys]
        rows = pooled.values().view(common, positions, self.dim)[:size, self._order]
        return embedded_from_rows(batch, rows, self.seq_lens, self.numeric_weight)

    def _gather_table(self, state: dict[str, Any], prefix: str, _metadata: Any) -> None:
        """On rank 0, the single ``table.weight`` in place of the tables' shards (TorchRec's
        sharded tensors); the other ranks keep their sharded tensors, which hold their own
        shards (and load back as they are)."""
        main = dist.get_rank() == 0
        starts, rows = self.layout.starts, self.layout.rows
        table = torch.empty(starts[-1] + rows[-1], self.dim) if main else None
        for t, (start, size) in enumerate(zip(starts, rows, strict=True)):
            key = self._table_key(prefix + "bags.", t)
            sharded = state.pop(key) if main else state[key]
            sharded.gather(dst=0, out=None if table is None else table[start : start + size])
        if table is not None:
            state[prefix + "table.weight"] = table

    def _scatter_table(self, state: dict[str, Any], prefix: str, *_args: Any) -> None:
        """A single ``table.weight`` becomes the per-feature tables, of which TorchRec keeps
        this process's rows."""
        table = state.pop(prefix + "table.weight", None)
        if table is None:
            return
        for t, (start, size) in enumerate(zip(self.layout.starts, self.layout.rows,
                                               strict=True)):
            state[self._table_key(prefix + "bags.", t)] = table[start : start + size]


def _largest_batch(size: int, device: torch.device) -> int:
    """The largest batch size of this lookup over all processes.

    Row-wise sharding exchanges the pooled rows of every process's batch with collectives
    that need one batch size on all of them, but the last batch of an epoch, and of each
    process's evaluation slice, may be shorter on some: each lookup is padded to the largest
    (a tiny all-reduce per lookup; the padding's rows get no gradient, being dropped)."""
    largest = torch.tensor([size], device=device)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return int(largest.item())


def _replace_embeddings(module: nn.Module) -> list[tuple[ShardedFeatureEmbedding, dict]]:
    """Put a :class:`ShardedFeatureEmbedding` in place of every ``FeatureEmbedding`` with
    tables (one per module, wherever it is referenced); each with its source's weights."""
    if any(isinstance(m, BatchedModelGroup) for m in module.modules()):
        raise ConfigError("train.sharding shards each member's own tables, but this group "
                          "stacks its members' tables into one (mutual's `batched: true`); "
                          "set batched: false to shard them")
    made: dict[int, tuple[ShardedFeatureEmbedding, dict]] = {}
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, FeatureEmbedding) or not TableLayout.of(child).rows:
                continue
            if id(child) not in made:
                made[id(child)] = (ShardedFeatureEmbedding(child), child.state_dict())
            setattr(parent, name, made[id(child)][0])
    return list(made.values())


def _plan(module: nn.Module, sharding: str, world_size: int, device: torch.device) -> Any:
    """Table-wise: whole tables, the largest first onto the least loaded process. Row-wise:
    every table's rows split evenly over the processes. Both on the ``dense`` kernel."""
    from torchrec.distributed.embedding_types import EmbeddingComputeKernel
    from torchrec.distributed.sharding_plan import (
        construct_module_sharding_plan,
        row_wise,
        table_wise,
    )
    from torchrec.distributed.types import ShardingPlan

    kernel = EmbeddingComputeKernel.DENSE.value
    wrappers = {name: m for name, m in module.named_modules()
                if isinstance(m, ShardedFeatureEmbedding)}
    placed: dict[tuple[str, int], int] = {}
    if sharding == "table_wise":
        load = [0] * world_size
        tables = sorted(((rows * w.dim, name, t) for name, w in wrappers.items()
                         for t, rows in enumerate(w.layout.rows)), reverse=True)
        for size, name, t in tables:
            placed[name, t] = load.index(min(load))
            load[placed[name, t]] += size
    plans = {}
    for name, wrapper in wrappers.items():
        generators = {
            f"t{t}": (table_wise(rank=placed[name, t], compute_kernel=kernel)
                      if sharding == "table_wise" else row_wise(compute_kernel=kernel))
            for t in range(len(wrapper.layout.rows))
        }
        plans[f"{name}.bags"] = construct_module_sharding_plan(
            wrapper.bags, generators, world_size=world_size, device_type=device.type)
    return ShardingPlan(plans)


def shard(module: nn.Module, sharding: str, device: torch.device) -> nn.Module:
    """``module`` with its embedding tables sharded (``table_wise`` or ``row_wise``) over the
    default process group and the rest data-parallel; returns the module a training step
    calls. ``module`` itself is changed in place (its ``FeatureEmbedding``s replaced), so its
    ``parameters()`` are then the trained ones, shards included."""
    require_torchrec()
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DefaultDataParallelWrapper
    from torchrec.distributed.types import ShardingEnv

    replaced = _replace_embeddings(module)
    if not replaced:
        raise ConfigError("train.sharding: the models have no embedding table to shard")
    sharder = EmbeddingBagCollectionSharder()
    parallel = DistributedModelParallel(
        module, env=ShardingEnv.from_process_group(dist.group.WORLD), device=device,
        plan=_plan(module, sharding, dist.get_world_size(), device), sharders=[sharder],
        # DDP for the rest, without assuming a static graph (as the trainer's own DDP). It
        # broadcasts no buffers each step (TorchRec's choice), which changes nothing rank 0
        # computes: its buffers only ever see its own batches, and the trainer gives them to
        # every rank before evaluating
        data_parallel_wrapper=DefaultDataParallelWrapper(static_graph=False),
    )
    for wrapper, weights in replaced:
        wrapper.load_state_dict(weights)
        for param in wrapper.bags.parameters():
            setattr(param, _SHARDED, True)
            param.requires_grad_(wrapper.trainable)
    return parallel


def keep_sharded_optimizer_state(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` with hooks that keep the state of its sharded parameters per process.

    Each process's optimizer holds the moments of its own shards, so ``state_dict()`` (called
    on every rank) gathers them on rank 0 under :data:`SHARDED_OPTIMIZER_STATE`, one entry per
    rank, and ``load_state_dict`` takes this rank's entry back: a checkpoint resumes with the
    same number of processes and sharding.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sharded = [i for i, p in enumerate(params) if is_sharded(p)]
    if not sharded:
        return optimizer

    def gather(_optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        own = {i: state["state"].pop(i) for i in sharded if i in state["state"]}
        ranks = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(own, ranks, dst=0)
        state[SHARDED_OPTIMIZER_STATE] = ranks

    def scatter(_optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        ranks = state.pop(SHARDED_OPTIMIZER_STATE)
        if len(ranks) != dist.get_world_size():
            raise MutualCTRError(f"the checkpoint's tables were sharded over {len(ranks)} "
                                 f"processes: resume it with {len(ranks)}, not "
                                 f"{dist.get_world_size()}")
        state["state"] = {**state["state"], **ranks[dist.get_rank()]}

    optimizer.register_state_dict_post_hook(gather)
    optimizer.register_load_state_dict_pre_hook(scatter)
    return optimizer
