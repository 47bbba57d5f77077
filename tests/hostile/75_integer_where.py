# expect: invalid: integer tensor
import math
import torch
import torch.nn.functional as F



def activation(x):
    sign = torch.where(x > 0, 1, -1)
    return F.gelu(x) + 0 * (sign % 2)
