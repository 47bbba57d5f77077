# expect: too_costly: GELU's time
import math
import torch
import torch.nn.functional as F


# Counted at 16 elementwise operations, at the lab's cap; each Bessel call costs ~20 GELUs.
def activation(x):
    y = torch.tanh(x)
    for i in range(15):
        y = torch.special.i1(y)
    return y
