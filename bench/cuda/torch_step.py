#!/usr/bin/env python3
"""The shapes of bench_step.cu (bench/cuda/bench_configs.h) in PyTorch, on the same GPU in the same run.

Llama/Qwen2-style: RMSNorm, rotate_half RoPE, SwiGLU, grouped-query attention, causal
scaled_dot_product_attention (one segment per row, as the CUDA bench's step); bf16 autocast over fp32 master
weights, fused AdamW. Shapes: 124m (untied head, no biases), qwen2.5-0.5b (full), qwen2.5-1.5b-lora (LoRA
rank 16 on every linear, base frozen); Qwen2.5 ties the head to the embedding and has q/k/v biases.
Modes: eager, and torch.compile. One RESULT line per mode:
    RESULT torch config=NAME mode=eager tokens_per_s=... step_ms=...
    python3 bench/cuda/torch_step.py [--config 124m] [--steps 10] [--modes eager,compile] [--smoke]
--smoke: a tiny model and one step, on the CPU when no GPU is visible (checks the script itself).
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, rope_theta, tied, qkv_bias, lora, rows)
CONFIGS = {
    "124m": (32000, 768, 2048, 12, 12, 4, 64, 1e4, False, False, False, 8),
    "qwen2.5-0.5b": (151936, 896, 4864, 24, 14, 2, 64, 1e6, True, True, False, 4),
    "qwen2.5-1.5b-lora": (151936, 1536, 8960, 28, 12, 2, 128, 1e6, True, True, True, 2),
}
SMOKE = {
    "smoke-d64": (256, 128, 256, 2, 2, 1, 64, 1e4, False, False, False, 1),
    "smoke-d128-lora": (256, 128, 256, 1, 1, 1, 128, 1e6, True, True, True, 1),
}
LORA_RANK, LORA_ALPHA = 16, 32


class LoraLinear(nn.Module):
    """A frozen linear plus a trainable rank-r update (B starts at zero, as in PEFT)."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(rank, base.in_features) * 0.01)
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(x, self.a), self.b) * self.scale


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
    def __init__(self, cfg):
        super().__init__()
        _, C, I, _, H, KVH, D, _, _, bias, _, _ = cfg
        self.H, self.KVH, self.D = H, KVH, D
        self.ln1, self.ln2 = RMSNorm(C), RMSNorm(C)
        self.q = nn.Linear(C, H * D, bias=bias)
        self.k = nn.Linear(C, KVH * D, bias=bias)
        self.v = nn.Linear(C, KVH * D, bias=bias)
        self.o = nn.Linear(H * D, C, bias=False)
        self.gate = nn.Linear(C, I, bias=False)
        self.up = nn.Linear(C, I, bias=False)
        self.down = nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        H, KVH, D = self.H, self.KVH, self.D
        h = self.ln1(x)
        q = self.q(h).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.k(h).view(B, T, KVH, D).transpose(1, 2)  # (B, KVH, T, D)
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
    def __init__(self, cfg):
        super().__init__()
        V, C, _, L, _, _, _, _, tied, _, lora, _ = cfg
        self.V = V
        self.embed = nn.Embedding(V, C)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(L))
        self.norm = RMSNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
        if tied:
            self.head.weight = self.embed.weight
        if lora:
            for p in self.parameters():
                p.requires_grad_(False)
            for blk in self.layers:
                for name in ("q", "k", "v", "o", "gate", "up", "down"):
                    setattr(blk, name, LoraLinear(getattr(blk, name), LORA_RANK, LORA_ALPHA))

    def forward(self, ids, labels, cos, sin):
        x = self.embed(ids)
        for blk in self.layers:
            x = blk(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, self.V).float(), labels.view(-1), ignore_index=-100)


def run(name, cfg, mode, steps, seq, dev):
    torch.manual_seed(0)
    V, D, theta, rows = cfg[0], cfg[6], cfg[7], cfg[11]
    model = Model(cfg).to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=dev == "cuda")
    ids = torch.randint(0, V, (rows, seq), device=dev)
    labels = torch.cat([ids[:, 1:], torch.full((rows, 1), -100, device=dev)], dim=1)
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, device=dev, dtype=torch.float64) / D))
    ang = torch.arange(seq, device=dev, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)
    fwd = torch.compile(model) if mode == "compile" else model

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = fwd(ids, labels, cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        return loss

    for _ in range(1 if steps == 1 else 3):  # warm-up (and compilation)
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1e3
    tps = rows * seq / (ms / 1e3)
    print(f"torch {mode} {name}: {rows} x {seq} tokens, step {ms:.2f} ms (median of {steps}), {tps:.0f} tokens/s, "
          f"loss {loss.item():.4f}")
    print(f"RESULT torch config={name} mode={mode} tokens_per_s={tps:.1f} step_ms={ms:.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="124m", choices=sorted(CONFIGS) + sorted(SMOKE))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu" and not a.smoke:
        raise SystemExit("torch_step.py: no GPU visible to PyTorch (--smoke runs a tiny model on the CPU)")
    cfg = SMOKE.get(a.config) or CONFIGS[a.config]
    if a.smoke:
        cfg = SMOKE.get(a.config, SMOKE["smoke-d64"])
    seq, steps = (96, 1) if a.smoke else (a.seq, a.steps)
    where = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {where}")
    torch.backends.cuda.matmul.allow_tf32 = True
    for mode in a.modes.split(","):
        try:
            run(a.config, cfg, mode, steps, seq, dev)
        except Exception as e:  # one mode failing (e.g. no compiler for torch.compile) must not hide the other
            print(f"torch {mode} {a.config}: failed: {type(e).__name__}: {e}")
        if dev == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
