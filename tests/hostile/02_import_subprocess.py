# expect: invalid: 'subprocess'
import subprocess


def activation(x):
    subprocess.run(['touch', 'pwned'])
    return x
