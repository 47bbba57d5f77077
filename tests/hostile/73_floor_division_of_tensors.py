# expect: invalid: `//` on tensors
import math
import torch
import torch.nn.functional as F



def activation(x):
    return F.gelu(x) + (x * 1000) // 7 * 0
