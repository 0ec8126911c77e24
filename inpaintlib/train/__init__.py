"""Training engine for both models of the report (§4): one loop, two recipes, one run directory.

* Context Encoder (report §3.1, §4.1, Fig 1): alternating Adam updates of the discriminator and the
  generator on a fixed central hole, loss ``0.999 L_rec + 0.001 L_adv`` (eqs. (3)-(5)).
* PConv U-Net (report §3.2, §4.2): irregular masks drawn afresh for every sample, loss of eq. (12),
  a first phase at lr 2e-4 and a fine-tuning phase at 5e-5 with the encoder's BatchNorm frozen.

How to run it::

    python -m inpaintlib train pconv --profile cpu --out runs/pconv-cpu        # 2-core CPU, minutes
    python -m inpaintlib train ce --profile gpu --out runs/ce-gpu              # one GPU, the report's settings
    torchrun --standalone --nproc_per_node=4 -m inpaintlib train pconv --profile gpu --out runs/pconv-4gpu
    python -m inpaintlib train pconv --out runs/pconv-cpu --resume             # continue a killed run

or from Python::

    from inpaintlib.train import make_config, train
    run_dir = train(make_config("pconv", "cpu", steps=200), "runs/demo", progress=False)

The run directory it writes is described in :mod:`inpaintlib.rundir`.

Exact resume. Nothing about the data depends on iterator state: the order of the training photos in
epoch ``e`` is a permutation seeded by ``(seed, e)``, and the crop/flip of a sample and its mask come
from a seed derived from ``(seed, step, position in the global batch)``. A run restarted from a
checkpoint at step ``k`` therefore sees exactly the batches an uninterrupted run sees from ``k`` on;
together with the saved model, optimizer, scaler and RNG states the final weights are bit-identical
(tested on CPU in fp32). The same keys make a DDP run with ``N`` processes of batch ``B`` see the same
photos as one process of batch ``N * B``.

The code, one concern a module: :mod:`~inpaintlib.train.config` (settings, profiles; the CLI flags are
generated from them), :mod:`~inpaintlib.train.sampling` (the data as a function of ``(seed, step)``),
:mod:`~inpaintlib.train.recipes` (the two models' training steps), :mod:`~inpaintlib.train.report`
(environment, sample grids, metrics), :mod:`~inpaintlib.train.loop` (the loop, in named steps) and
:mod:`~inpaintlib.train.command` (the command line). The files are written by :mod:`inpaintlib.rundir`
and :mod:`inpaintlib.runcard`. To follow one training step: ``loop._one_step`` -> ``recipes.PConvRecipe.
train_step`` -> :class:`inpaintlib.losses.PConvLoss`.
"""

from __future__ import annotations

from pathlib import Path

from .command import cli
from .config import PROFILES, CEConfig, PConvConfig, TrainConfig, config_from_dict, make_config
from .loop import train
from .resume import resume_config
from .sampling import StepBatchSampler

__all__ = [
    "TrainConfig",
    "CEConfig",
    "PConvConfig",
    "PROFILES",
    "make_config",
    "config_from_dict",
    "train",
    "resume_config",
    "StepBatchSampler",
    "cli",
    "train_or_resume",
]


def train_or_resume(config: TrainConfig, out_dir, **kwargs):
    """Train ``config`` into ``out_dir``, or continue the run already there (for chapters run twice with
    ``train=True``, e.g. by papermill: the second run resumes instead of failing on a non-empty folder).
    Keyword arguments go to :func:`train`. Returns the run directory."""
    out = Path(out_dir)
    resume = (out / "checkpoint.pt").is_file() or (out / "weights.pt").is_file()
    return train(resume_config(out, **_run_length(config)) if resume else config, out, resume=resume, **kwargs)


def _run_length(config: TrainConfig) -> dict:
    """The settings a resume may take from a new config: how long the run goes."""
    return {k: getattr(config, k) for k in ("steps", "finetune_steps") if hasattr(config, k)}
