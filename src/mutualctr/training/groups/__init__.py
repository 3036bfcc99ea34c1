"""Groups of models the trainer runs as one module: ``forward(batch) -> list[ModelOutput]``.

``base.ModelGroup`` (N models, each its own parameters), ``batched.BatchedModelGroup`` (N
models of one architecture, stacked under ``vmap``), ``shared_embedding.SharedEmbeddingGroup``
(K students over one embedding) and ``distillation.DistillationGroup`` (a frozen teacher and
a student over its embedding).
"""
