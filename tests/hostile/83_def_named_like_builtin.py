# expect: invalid: name the function `activation`
import torch


# As a file, `abs(x)` inside is this def calling itself (RecursionError); the normal form
# renamed the def to `activation` and called the builtin abs, so a file that cannot run scored.
def abs(x):
    return torch.tanh(x) * abs(x)


activation = abs
