# expect: invalid: rename the class
import torch
import torch.nn.functional as F


# As a file, `max(x, 0.0)` calls this class (0 everywhere); the normal form dropped the class
# and called the builtin, so minact scored other code than the file's (cf. 78, for modules).
class max:
    def __new__(cls, a, b):
        return a * 0.0


def activation(x):
    return F.gelu(x) + max(x, 0.0)
