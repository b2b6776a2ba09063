"""
A small character-level GPT: THE file the operator edits.

Contract with evaluate.py (which owns the data, the clock and the metric):
  BLOCK_SIZE, BATCH_SIZE              shape of the (BATCH_SIZE, BLOCK_SIZE) batches it feeds
  build_model(vocab_size, device)     -> nn.Module; model(idx) maps (B, T) ids, T <= BLOCK_SIZE,
                                         to (B, T, vocab_size) logits
  build_optimizer(model)              -> torch.optim.Optimizer
  train_step(model, opt, xb, yb, step, progress) -> float training loss of this step
where progress in [0, 1) is the fraction of the time budget already spent.
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

# ---------------------------------------------------------------------------
# Hyperparameters

N_LAYER = 2  # transformer blocks
N_HEAD = 4  # attention heads per block
HEAD_DIM = 16  # channels per head; the model width is N_HEAD * HEAD_DIM
MLP_RATIO = 4  # MLP hidden width as a multiple of the model width
BLOCK_SIZE = 64  # context length in characters
BATCH_SIZE = 32  # sequences per optimiser step
LEARNING_RATE = 1e-3  # peak AdamW learning rate
WEIGHT_DECAY = 0.1  # AdamW decoupled weight decay, applied to matrices only
BETA2 = 0.99  # AdamW second-moment decay
DROPOUT = 0.1  # dropout probability in attention output and MLP
WARMUP_STEPS = 20  # linear learning-rate warmup, in optimiser steps
WARMDOWN_FRAC = 0.0  # final fraction of the time budget with the rate decayed linearly to 0
GRAD_CLIP = 1.0  # maximum global gradient norm; 0 disables clipping

# ---------------------------------------------------------------------------
# Model


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, N_HEAD, HEAD_DIM).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, MLP_RATIO * n_embd),
            nn.GELU(),
            nn.Linear(MLP_RATIO * n_embd, n_embd),
            nn.Dropout(DROPOUT),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        n_embd = N_HEAD * HEAD_DIM
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(BLOCK_SIZE, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd) for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        return self.head(self.ln_f(self.blocks(x)))


# ---------------------------------------------------------------------------
# Optimisation


def build_model(vocab_size: int, device: str) -> nn.Module:
    return GPT(vocab_size).to(device)


def build_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=(0.9, BETA2))


def lr_at(step: int, progress: float) -> float:
    """Linear warmup by steps, then constant, then a linear warmdown by time."""
    warmup = min(1.0, (step + 1) / max(1, WARMUP_STEPS))
    warmdown = 1.0 if progress < 1.0 - WARMDOWN_FRAC else (1.0 - progress) / WARMDOWN_FRAC
    return LEARNING_RATE * warmup * max(0.0, warmdown)


def train_step(model, opt, xb, yb, step: int, progress: float) -> float:
    for group in opt.param_groups:
        group["lr"] = lr_at(step, progress)
    logits = model(xb)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), yb.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if GRAD_CLIP > 0:
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    opt.step()
    return loss.item()
