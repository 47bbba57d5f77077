# expect: invalid: syntax error at line 3
def activation(x):
    return x +
