# expect: nonfinite: not finite
import math
import torch
import torch.nn.functional as F


# Finite on the probe grid, NaN between its points: salted and random float32 probes hit it.
def activation(x):
    u = (x + 10 - 0.0014142135623730952) * 2047 / 20
    return F.mish(x) + 0 * torch.sqrt(0.01 - torch.sin(math.pi * u) ** 2)
