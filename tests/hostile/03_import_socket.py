# expect: invalid: 'socket'
import socket


def activation(x):
    socket.create_connection(('example.com', 80))
    return x
