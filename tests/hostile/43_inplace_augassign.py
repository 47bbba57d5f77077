# expect: bad_output: in place
def activation(x):
    x += 1
    return x
