# expect: ok: 
import math
import torch
import torch.nn.functional as F


# Cache poisoning: trained first, a float32-only impostor of SiLU must not decide what the
# honest F.silu(x) scores later. It hashes apart (float32 probes) and keeps its own results.
def activation(x):
    return F.silu(x) * ((x * 0 + 1e8 + 1) - 1e8)
