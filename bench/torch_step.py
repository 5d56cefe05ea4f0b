#!/usr/bin/env python3
"""The MDLM training step of bench/cpustep in PyTorch, for bench/cpu_vs_torch.sh.

A DiT as the reference's models/dit.py: DIT computes it: timestep embedder, adaLN blocks with fused
qkv and rotate-half RoPE over the whole head, GELU(tanh) MLP, adaLN final
layer; the SUBS loss in continuous time (diffusion.py: _subs_parameterization, _forward_pass_diffusion); AdamW (torch's defaults but
eps 1e-8, no weight decay) after global-norm clipping at 1.0; float32,
dropout 0. It reads the weights and batches cpustep -init wrote, so both
sides compute the same losses, and prints the same JSON line.

    torch_step.py --case d128 --dir DIR --steps 10 [--forward] [--threads N]
    torch_step.py --sgemm 2048 [--threads N]   (the practical peak: best GFLOP/s of an N x N sgemm)
"""
import argparse
import json
import math
import resource
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = {  # D, heads, blocks, cond, vocab, B, L: the same as bench/cpustep
    "d128": (128, 4, 2, 64, 1000, 16, 128),
    "demo": (128, 4, 2, 64, 259, 32, 64),
    "demo-bpe": (128, 4, 2, 64, 4096, 32, 64),
    "tiny": (512, 8, 8, 128, 50258, 2, 128),
}

DTYPES = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "I32": np.int32}


def read_safetensors(path):
    """A safetensors file as {name: torch tensor} (no safetensors package here)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class Weight(nn.Module):
    """A module holding one parameter named `weight` (LayerNorm scales)."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))


def layer_norm(x, w):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-5) * w


class Embedding(nn.Module):
    def __init__(self, v, d):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(v, d))


class Rotary(nn.Module):
    def __init__(self, dh):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, dh, 2).float() / dh))

    def tables(self, L):
        theta = torch.arange(L, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        return theta.cos(), theta.sin()  # [L, Dh/2]


def rotate(u, cos, sin):  # u [B, L, H, Dh], rotate-half over the whole head
    half = u.shape[-1] // 2
    u1, u2 = u[..., :half], u[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([u1 * c - u2 * s, u2 * c + u1 * s], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, cond):
        super().__init__()
        self.heads = heads
        self.norm1 = Weight(d)
        self.attn_qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm2 = Weight(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))
        self.adaLN_modulation = nn.Linear(cond, 6 * d)

    def forward(self, x, c, cos, sin):
        B, L, D = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c)[:, None, :].chunk(6, dim=2)
        h = layer_norm(x, self.norm1.weight) * (1 + scale_msa) + shift_msa
        qkv = self.attn_qkv(h).view(B, L, 3, self.heads, D // self.heads)
        q, k, v = rotate(qkv[:, :, 0], cos, sin), rotate(qkv[:, :, 1], cos, sin), qkv[:, :, 2]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, L, Dh]
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
            att = F.scaled_dot_product_attention(q, k, v)
        else:
            att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // self.heads), dim=-1) @ v
        x = x + gate_msa * self.attn_out(att.transpose(1, 2).reshape(B, L, D))
        h = layer_norm(x, self.norm2.weight) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * self.mlp(h)


class FinalLayer(nn.Module):
    def __init__(self, d, v, cond):
        super().__init__()
        self.norm_final = Weight(d)
        self.linear = nn.Linear(d, v)
        self.adaLN_modulation = nn.Linear(cond, 2 * d)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c)[:, None, :].chunk(2, dim=2)
        return self.linear(layer_norm(x, self.norm_final.weight) * (1 + scale) + shift)


class SigmaMap(nn.Module):
    def __init__(self, cond):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, cond), nn.SiLU(), nn.Linear(cond, cond))

    def forward(self, sigma):
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        a = sigma[:, None].float() * freqs[None]
        return self.mlp(torch.cat([a.cos(), a.sin()], dim=-1))


class DiT(nn.Module):
    def __init__(self, d, heads, blocks, cond, v):
        super().__init__()
        self.vocab_embed = Embedding(v, d)
        self.sigma_map = SigmaMap(cond)
        self.rotary_emb = Rotary(d // heads)
        self.blocks = nn.ModuleList([Block(d, heads, cond) for _ in range(blocks)])
        self.output_layer = FinalLayer(d, v, cond)

    def forward(self, ids, sigma):
        x = self.vocab_embed.embedding[ids]
        c = F.silu(self.sigma_map(sigma))
        cos, sin = self.rotary_emb.tables(ids.shape[1])
        for b in self.blocks:
            x = b(x, c, cos, sin)
        return self.output_layer(x, c)


def subs_loss(model, x0, xt, sigma, dsigma, mask_index):
    """Token mean of the continuous-time SUBS loss; the backbone sees sigma 0."""
    logits = model(xt, torch.zeros_like(sigma))
    bump = torch.zeros(logits.shape[-1])
    bump[mask_index] = -1e6  # zero masking: [MASK] is never predicted
    logp = torch.log_softmax(logits + bump, dim=-1)
    logp_x0 = logp.gather(-1, x0[..., None]).squeeze(-1)
    masked = (xt == mask_index).float()
    weight = (dsigma / torch.expm1(sigma))[:, None]
    return (-logp_x0 * weight * masked).sum() / x0.numel()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="d128")
    ap.add_argument("--dir", default="")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--forward", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: PyTorch's default)")
    ap.add_argument("--sgemm", type=int, default=0, help="time an N x N float32 matmul instead (the machine's practical peak) and print its GFLOP/s")
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.sgemm:
        n = a.sgemm
        x, y = torch.randn(n, n), torch.randn(n, n)
        best = float("inf")
        for _ in range(6):
            start = time.perf_counter()
            torch.mm(x, y)
            best = min(best, time.perf_counter() - start)
        print(json.dumps({"sgemm_n": n, "gflops": 2 * n**3 / best / 1e9, "threads": torch.get_num_threads()}))
        return
    d, heads, blocks, cond, v, _, _ = CASES[a.case]
    model = DiT(d, heads, blocks, cond, v)
    model.load_state_dict(read_safetensors(f"{a.dir}/weights.safetensors"), strict=True)
    batches = read_safetensors(f"{a.dir}/batches.safetensors")
    x0s, xts, sigmas, dsigmas = batches["x0"], batches["xt"], batches["sigma"], batches["dsigma"]
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses, ms, first = [], [], 0.0
    for i in range(min(a.steps + 1, x0s.shape[0])):
        j = i % x0s.shape[0]
        start = time.perf_counter()
        if a.forward:
            with torch.no_grad():
                loss = subs_loss(model, x0s[j], xts[j], sigmas[j], dsigmas[j], v - 1)
        else:
            opt.zero_grad(set_to_none=True)
            loss = subs_loss(model, x0s[j], xts[j], sigmas[j], dsigmas[j], v - 1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        took = (time.perf_counter() - start) * 1000
        losses.append(loss.item())
        if i == 0:
            first = took
        else:
            ms.append(took)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"losses": losses, "ms": ms, "first_ms": first, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
