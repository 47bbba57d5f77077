# expect: invalid: import it under another name
import torch
from torch import sigmoid as range


# As a file, the for loop calls torch.sigmoid(3) (a TypeError); the normal form kept the
# loop's `range(3)` as written, which the worker runs as the builtin: a loop that scores.
def activation(x):
    for i in range(3):
        x = torch.tanh(x) + x * 0.5
    return x
