"""JAX-free foundations shared by the trainer, the evaluators and the launchers (which must run without JAX)."""
