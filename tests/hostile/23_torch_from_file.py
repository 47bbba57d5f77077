# expect: invalid: torch.from_file
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.from_file('/etc/passwd')
