"""The micro-lab: tasks and their settings (task), tasks.toml (loader), target expressions
(expression) and each task's synthetic data (sampling). The packaged labs live in data/.
"""
