# expect: invalid: UTF-8
def activation(x):
    return x  # ÿþ
