# expect: invalid: may exceed 1e18
import math
import torch
import torch.nn.functional as F



def activation(x):
    n = 10 ** 9
    for i in range(6):
        n = n * n
    return x * (1 + 0 * n)
