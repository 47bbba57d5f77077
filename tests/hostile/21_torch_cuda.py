# expect: invalid: torch.cuda
import math
import torch
import torch.nn.functional as F


def activation(x):
    torch.cuda.synchronize()
    return x
