"""Planning a run before it runs: the layer plan and data budget, and the ahead-of-time compile planner (aot.py).

`python -m ffnjax.plan` is the command line (__main__.py).
"""
