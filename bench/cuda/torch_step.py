#!/usr/bin/env python3
"""The bench model of bench_step.cu in PyTorch, for comparison on the same GPU in the same run.

Llama-style: vocab 32000, hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads (head dim 64),
RMSNorm, rotate_half RoPE, SwiGLU, untied head, no biases; bf16 autocast over fp32 master weights,
fused AdamW; 16 rows x 1024 tokens, causal scaled_dot_product_attention (one segment per row, as the
CUDA bench). Modes: eager, and torch.compile. Prints one RESULT line per mode.
    python3 bench/cuda/torch_step.py [--steps 10] [--modes eager,compile]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, C, I, L, H, KVH, D = 32000, 768, 2048, 12, 12, 4, 64


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight.to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(C), RMSNorm(C)
        self.q = nn.Linear(C, H * D, bias=False)
        self.k = nn.Linear(C, KVH * D, bias=False)
        self.v = nn.Linear(C, KVH * D, bias=False)
        self.o = nn.Linear(H * D, C, bias=False)
        self.gate = nn.Linear(C, I, bias=False)
        self.up = nn.Linear(C, I, bias=False)
        self.down = nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, H, D).transpose(1, 2)      # (B, H, T, D)
        k = self.k(h).view(B, T, KVH, D).transpose(1, 2)    # (B, KVH, T, D)
        v = self.v(h).view(B, T, KVH, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H * D))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.layers = nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, labels, cos, sin):
        x = self.embed(ids)
        for blk in self.layers:
            x = blk(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, V).float(), labels.view(-1), ignore_index=-100)


def run(mode, steps, rows, seq):
    torch.manual_seed(0)
    dev = "cuda"
    model = Model().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    ids = torch.randint(0, V, (rows, seq), device=dev)
    labels = torch.cat([ids[:, 1:], torch.full((rows, 1), -100, device=dev)], dim=1)
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2, device=dev, dtype=torch.float64) / D))
    ang = torch.arange(seq, device=dev, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)
    fwd = torch.compile(model) if mode == "compile" else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(ids, labels, cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(3):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1e3
    tps = rows * seq / (ms / 1e3)
    print(f"torch {mode}: step {ms:.2f} ms (median of {steps}), {tps:.0f} tokens/s, loss {loss.item():.4f}")
    print(f"RESULT torch_{mode} tokens_per_s={tps:.0f} step_ms={ms:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--modes", default="eager,compile")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}")
    torch.backends.cuda.matmul.allow_tf32 = True
    for mode in a.modes.split(","):
        try:
            run(mode, a.steps, a.rows, a.seq)
        except Exception as e:  # one mode failing (e.g. no compiler for torch.compile) must not hide the other
            print(f"torch {mode}: failed: {type(e).__name__}: {e}")
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
