"""Notebook helpers (interactive.py): `InteractiveModel` (score, generate, ablate a restored run) and `open_study`
(a study directory's analysis as objects). The notebooks themselves are in notebooks/."""

from ffnjax.notebook.interactive import InteractiveModel, Study, open_study

__all__ = ["InteractiveModel", "Study", "open_study"]
