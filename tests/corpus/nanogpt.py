"""A character-level GPT in miniature, trained the way nanoGPT's train.py trains:
module-level config globals, an endless loop counted by hand, gradient accumulation,
a batch prefetched at the end of each micro-step, a warmup + cosine learning rate
written into the optimizer by hand, periodic evaluation with best_val_loss."""

import itertools
import math
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

import flordb as flor

torch.set_num_threads(1)

# -----------------------------------------------------------------------------
# config (nanoGPT reads these from configurator.py; here they are flor.args)
batch_size = flor.arg("batch_size", 8)
block_size = flor.arg("block_size", 16)
n_layer = flor.arg("n_layer", 1)
n_head = 2
n_embd = flor.arg("n_embd", 32)
dropout = flor.arg("dropout", 0.1)
learning_rate = flor.arg("learning_rate", 3e-3)
max_iters = flor.arg("max_iters", 12)
weight_decay = 1e-1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
decay_lr = True
warmup_iters = 3
lr_decay_iters = 12
min_lr = 3e-4
eval_interval = flor.arg("eval_interval", 4)
eval_iters = 2
log_interval = 1
gradient_accumulation_steps = 2
seed = flor.arg("seed", 0)
device_type = "cpu"
dtype = "float32"
# -----------------------------------------------------------------------------

torch.manual_seed(1337 + seed)
ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=torch.bfloat16)

# the "dataset": a noisy repeating token pattern held in memory instead of train.bin
vocab_size = 48
_g = np.random.default_rng(2024)
_pattern = _g.integers(0, vocab_size, size=37)
_tokens = np.tile(_pattern, 60)
_flip = _g.random(_tokens.shape) < 0.1
_tokens[_flip] = _g.integers(0, vocab_size, size=int(_flip.sum()))
_n = int(0.9 * len(_tokens))
train_data = _tokens[:_n].astype(np.int64)
val_data = _tokens[_n:].astype(np.int64)


def get_batch(split):
    data = train_data if split == "train" else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy(data[i : i + block_size]) for i in ix.tolist()])
    y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size]) for i in ix.tolist()])
    return x, y


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        mask = torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
        self.register_buffer("bias", mask)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(n_embd, dim=2)
        k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
        q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
        v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block() for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets=None):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        nodecay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": nodecay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


model = GPT()
scaler = torch.amp.GradScaler(enabled=(dtype == "float16"))
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2))


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            with ctx:
                logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def weight_norm(m):  # HINDSIGHT
    return math.sqrt(sum(float((p.detach() ** 2).sum()) for p in m.parameters()))  # HINDSIGHT


X, Y = get_batch("train")  # fetch the very first batch
t0 = time.time()
local_iter_num = 0
iter_num = 0
best_val_loss = 1e9
with flor.checkpointing(model=model, optimizer=optimizer):
    for _ in flor.loop("iter", itertools.count()):
        lr = get_lr(iter_num) if decay_lr else learning_rate
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        flor.log("h_epoch", lr)  # HINDSIGHT

        if iter_num % eval_interval == 0:
            losses = estimate_loss()
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            flor.log("val_loss", losses["val"])
            if losses["val"] < best_val_loss:
                best_val_loss = losses["val"]
            flor.log("best_val_loss", best_val_loss)

        for micro_step in range(gradient_accumulation_steps):
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
            # prefetch the next batch while the "GPU" works on this one
            X, Y = get_batch("train")
            scaler.scale(loss).backward()
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        flor.log("h_epoch2", weight_norm(model))  # HINDSIGHT
        flor.log("h_epoch3", int(X.sum()))  # HINDSIGHT

        t1 = time.time()
        dt = t1 - t0
        t0 = t1
        if iter_num % log_interval == 0:
            lossf = loss.item() * gradient_accumulation_steps
            flor.log("loss", lossf)
            print(f"iter {iter_num}: loss {lossf:.4f}, time {dt * 1000:.2f}ms")
        iter_num += 1
        local_iter_num += 1
        if iter_num > max_iters:
            break
print("best val loss", best_val_loss)
