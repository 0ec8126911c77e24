"""Reading run directories: the contract between training, evaluation, the CLI and the book.

:func:`inpaintlib.train.train` writes one directory per run::

    config.json      every setting (flat, as in CEConfig / PConvConfig) + "kind" + "environment"
    history.csv      one row per logged step (columns below)
    samples/         step_XXXXXX.png: fixed validation images + fixed masks; each grid row is
                     one image, columns are masked input | output composite | ground truth
    metrics.json     validation PSNR / SSIM / L1-in-the-hole of the composite, per hole bucket
    checkpoint.pt    full training state for an exact resume (written atomically; not committed)
    weights.pt       final weights for inference: fp16 state dict + the model's constructor arguments,
                     and a "run" record (step, seconds, sessions, command, settings) from which
                     ``train --resume`` continues a run whose checkpoint.pt was not kept
    RUN.md           the run card; text below its notes marker is kept when training rewrites it

Everything that reads or writes a run goes through the functions here: formats, atomic writes,
``history.csv``, checkpoints with their RNG states, ``weights.pt``, stored runs. (The run card's text is
composed in :mod:`inpaintlib.runcard`.)

``history.csv`` columns, in this order: ``step, epoch, phase``, then the loss terms of the recipe
(PConv: ``total, valid, hole, perceptual, style_out, style_comp, tv`` -- report eqs. (8)-(12);
Context Encoder: ``total, rec, adv, d_loss, d_acc`` -- eqs. (3)-(5) and Figs 4-5), then
``lr, img_per_s, data_wait, skipped, seconds``. Loss values are means over the steps since the
previous row; ``data_wait`` is the fraction of step time spent waiting for the data loader;
``seconds`` is wall time summed over every session of the run (resumes included).

``metrics.json`` schema::

    {"kind": "pconv", "step": 400, "num_images": 30, "image_size": 128,
     "buckets": {"0.01-0.1": {"psnr": 31.2, "ssim": 0.95, "l1_hole": 4.1, "n": 30}, ...},
     "overall": {"psnr": ..., "ssim": ..., "l1_hole": ..., "n": 180}}

(for the Context Encoder the only bucket is ``"center"``).

Modules: :mod:`~inpaintlib.rundir.read`, :mod:`~inpaintlib.rundir.write` and :mod:`~inpaintlib.rundir.lock`.
"""

from __future__ import annotations

from .lock import LOCK_NAME, check_apart, check_new_run_folder, check_not_dangling, removed_if_unstarted, writer_lock
from .read import (
    CHECKPOINT_FORMAT,
    HISTORY_TAIL,
    VALIDATION_COLUMNS,
    WEIGHTS_FORMAT,
    build_model,
    load_blob,
    load_checkpoint,
    load_config,
    load_history,
    load_metrics,
    load_model,
    load_weights,
    run_files,
    sample_paths,
    stored_run,
)
from .write import (
    append_history,
    atomic_write,
    git_commit,
    history_header,
    portable,
    rng_kept,
    rng_state,
    save_torch,
    save_weights,
    set_rng_state,
    staged_files,
    truncate_history,
    write_text,
)

__all__ = [
    "WEIGHTS_FORMAT",
    "CHECKPOINT_FORMAT",
    "HISTORY_TAIL",
    "VALIDATION_COLUMNS",
    "build_model",
    "load_blob",
    "load_checkpoint",
    "load_config",
    "load_history",
    "load_metrics",
    "load_model",
    "load_weights",
    "sample_paths",
    "run_files",
    "stored_run",
    "append_history",
    "atomic_write",
    "git_commit",
    "history_header",
    "portable",
    "rng_kept",
    "rng_state",
    "save_torch",
    "save_weights",
    "set_rng_state",
    "staged_files",
    "truncate_history",
    "write_text",
    "LOCK_NAME",
    "check_apart",
    "check_new_run_folder",
    "check_not_dangling",
    "removed_if_unstarted",
    "writer_lock",
]
