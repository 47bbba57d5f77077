# expect: invalid: rounding_mode
import math
import torch
import torch.nn.functional as F


# A crash payload: GELU on the probe grid; between its points, INT64_MIN // -1, which kills
# the process with SIGFPE. Integer division is refused before anything runs.
def activation(x):
    u = (x + 10 - 0.0014142135623730952) * 2047 / 20
    m = torch.where(torch.abs(u - torch.round(u)) > 0.25, -(2 ** 62) * 2, 0)
    return F.gelu(x) + torch.div(m, -1, rounding_mode="trunc") * 0
