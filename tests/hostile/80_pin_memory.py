# expect: invalid: pin_memory
import torch


# Pinned memory needs an accelerator: the verdict would depend on the machine that probed it.
def activation(x):
    return torch.ones_like(x, pin_memory=True) * torch.tanh(x)
