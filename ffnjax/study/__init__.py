"""The placement study: the grid runner (runner.py) and `python -m ffnjax.study` (__main__.py)."""
