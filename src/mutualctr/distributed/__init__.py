"""Training on several processes: DDP under ``torchrun`` (:mod:`.ddp`) and TorchRec-sharded
embedding tables (:mod:`.sharding`)."""
