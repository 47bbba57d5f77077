# expect: ok: 
import math
import torch
import torch.nn.functional as F


# Fitness cheating: GELU in float64, where a fixed grid would probe it, and identically 0 in
# float32, the training dtype. Probed in float32 too, it hashes apart from GELU and is
# trained on its own (and scores badly).
def activation(x):
    flag = (x * 0 + 1e8 + 1) - 1e8
    return F.gelu(x) * flag
