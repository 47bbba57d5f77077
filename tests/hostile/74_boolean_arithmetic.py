# expect: invalid: comparison's result
import math
import torch
import torch.nn.functional as F



def activation(x):
    return x * (x > 0) + 0.01 * x * (x <= 0)
