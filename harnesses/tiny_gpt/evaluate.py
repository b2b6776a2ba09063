"""
Harness for the tiny_gpt example: `python evaluate.py`. IMMUTABLE: the operator never edits this.

Trains the model that train.py builds for a time budget that this file
enforces, then prints the val_bpb of prepare.evaluate_bpb in a `---` block.

Environment:
  METAEXP_TIME_BUDGET  training seconds (float, default 10)
  METAEXP_SEED         seed for torch and the batch sampler (int, default 0)
  METAEXP_THREADS      CPU threads when there is no GPU (int, default 1: on a shared 2-core
                       machine two threads were ~20% faster when idle but 5-10x slower in
                       bursts, which makes a wall-clock budget noisy)
  METAEXP_CLOCK        "wall" (default) or "cpu": on CPU, "cpu" bounds training by this process's
                       CPU seconds (all threads), so runs on a busy machine stay comparable
  METAEXP_CACHE_DIR    where prepare.py may cache the generated corpus (optional)
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time

import torch

TIME_BUDGET = float(os.environ.get("METAEXP_TIME_BUDGET", "10"))  # training seconds
SEED = int(os.environ.get("METAEXP_SEED", "0"))
THREADS = int(os.environ.get("METAEXP_THREADS", "1"))  # CPU threads, ignored on CUDA
CLOCK = os.environ.get("METAEXP_CLOCK", "wall")  # what the budget counts: wall or cpu seconds


def peak_mem_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def batch_sampler(data: torch.Tensor, block: int, batch: int, device: str):
    """A function returning random (inputs, targets) windows of the training text."""
    gen = torch.Generator(device=device).manual_seed(SEED)
    offsets = torch.arange(block + 1, device=device)

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(data) - block - 1, (batch, 1), device=device, generator=gen)
        chunk = data[starts + offsets]
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    return get_batch


def train_for_budget(train_step, model, opt, get_batch, clock) -> tuple[int, float, float]:
    """Step until TIME_BUDGET seconds of `clock` are spent: (steps, last loss, seconds).

    A step that starts before the deadline runs to its end; a non-finite loss stops early.
    """
    step, loss = 0, 0.0
    t0 = clock()
    while (elapsed := clock() - t0) < TIME_BUDGET:
        xb, yb = get_batch()
        loss = float(train_step(model, opt, xb, yb, step, elapsed / TIME_BUDGET))
        step += 1
        if not math.isfinite(loss):
            break
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return step, loss, clock() - t0


def main() -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if CLOCK not in ("wall", "cpu"):
        raise ValueError(f"METAEXP_CLOCK={CLOCK!r}: expected 'wall' or 'cpu'")
    clock = time.process_time if CLOCK == "cpu" and device == "cpu" else time.perf_counter
    if device == "cpu":
        torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the harness directory
    import prepare
    import train  # the editable file; imported after seeding so its module code is seeded too

    block, batch = int(train.BLOCK_SIZE), int(train.BATCH_SIZE)
    get_batch = batch_sampler(prepare.load_tensor("train", device), block, batch, device)
    val = prepare.load_tensor("val", device)
    model = train.build_model(prepare.VOCAB_SIZE, device)
    opt = train.build_optimizer(model)
    num_params = sum(p.numel() for p in model.parameters())

    steps, loss, seconds = train_for_budget(train.train_step, model, opt, get_batch, clock)
    val_bpb = prepare.evaluate_bpb(model, block, device, val) if math.isfinite(loss) else math.nan

    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"entropy_floor:    {prepare.ENTROPY_RATE_BPC:.6f}")
    print(f"training_seconds: {seconds:.1f}")
    print(f"num_steps:        {steps}")
    print(f"num_params:       {num_params}")
    print(f"peak_mem_mb:      {peak_mem_mb(device):.1f}")
    if not math.isfinite(val_bpb):
        print(f"FAIL: training loss is {loss} after {steps} steps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
