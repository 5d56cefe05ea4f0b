"""Writes dimamba.ckpt: a Lightning-format training checkpoint of a DiMamba, as
the reference's trainer saves one, for TestLightningDiMambaImport.

The module tree repeats the reference's models/dimamba.py attribute by attribute
(DiMamba -> sigma_map, model.bimamba.backbone.{embeddings, layers[i].{mixer.
{mamba_fwd, mamba_rev}, norm, adaLN_modulation}, adaLN_modulation_final, norm_f},
model.lm_head), with the reverse Mamba's in_proj/out_proj tied to the forward
one's, so PyTorch itself decides the parameters() order the EMA list follows and
the state_dict names. Weights: ../../../../shared/fixtures/dimamba/public. The
EMA shadow params are the weights times 0.5 (so EMA and raw imports differ).
Run with Debian's python3-torch: /usr/bin/python3 make.py (from this folder).
"""
import json, struct, sys
import torch
from torch import nn

src = sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/fixtures/dimamba/public"
cfg = json.load(open(f"{src}/config.json"))
D, C, V, NB = cfg["hidden_size"], cfg["cond_dim"], cfg["vocab_size"], cfg["n_blocks"]
N, K, E, R = cfg["d_state"], cfg["d_conv"], cfg["expand"], cfg["dt_rank"]
Din = E * D


class Mamba(nn.Module):
    def __init__(self):
        super().__init__()
        self.in_proj = nn.Linear(D, 2 * Din, bias=False)
        self.conv1d = nn.Conv1d(Din, Din, K, groups=Din, padding=K - 1)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(Din, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, Din)
        self.A_log = nn.Parameter(torch.zeros(Din, N))
        self.D = nn.Parameter(torch.ones(Din))
        self.out_proj = nn.Linear(Din, D, bias=False)


class BiMambaWrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.mamba_fwd = Mamba()
        self.mamba_rev = Mamba()
        self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
        self.mamba_rev.in_proj.bias = self.mamba_fwd.in_proj.bias
        self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight
        self.mamba_rev.out_proj.bias = self.mamba_fwd.out_proj.bias


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(D))
        self.register_parameter("bias", None)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer = BiMambaWrapper()
        self.norm = RMSNorm()
        self.adaLN_modulation = nn.Linear(C, 3 * D)


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, D)


class MixerModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.layers = nn.ModuleList([Block() for _ in range(NB)])
        self.adaLN_modulation_final = nn.Linear(C, 2 * D)
        self.norm_f = RMSNorm()


class BiMamba(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = MixerModel()


class ForMaskedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.bimamba = BiMamba()
        self.lm_head = nn.Linear(D, V, bias=False)


class TimestepEmbedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, C), nn.SiLU(), nn.Linear(C, C))


class DiMamba(nn.Module):
    def __init__(self):
        super().__init__()
        self.sigma_map = TimestepEmbedder()
        self.model = ForMaskedLM()


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(info["shape"]).clone()
    return out


m = DiMamba()
weights = read_safetensors(f"{src}/dimamba.safetensors")
missing = m.load_state_dict(weights, strict=True)
state = {"backbone." + k: v for k, v in m.state_dict().items()}
ema = [p.detach().clone() * 0.5 for p in m.parameters()]
config = {"backbone": "dimamba", "parameterization": "subs", "T": 0, "time_conditioning": False,
          "model": {"hidden_size": D, "cond_dim": C, "n_blocks": NB, "length": cfg["length"], "dropout": 0.1,
                    "temb_strategy": "adaln", "tie_word_embeddings": False},
          "noise": {"type": "loglinear"}}
torch.save({"state_dict": state, "ema": {"decay": 0.9999, "num_updates": 3, "shadow_params": ema},
            "hyper_parameters": {"config": config}, "global_step": 3, "epoch": 0,
            "pytorch-lightning_version": "2.2.1"}, "dimamba.ckpt")
print(f"dimamba.ckpt: {len(state)} state_dict entries, {len(ema)} EMA tensors")
