"""What each command does, without printing: the CLI parses flags into an options record,
calls a job here, and renders what comes back.
"""
