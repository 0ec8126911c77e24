"""The two recipes: what differs between the models (networks, optimizers, one training step, inpainting).

* Context Encoder (report §3.1, §4.1, Fig 1): alternating Adam updates of the discriminator and the
  generator on a fixed central hole, loss ``0.999 L_rec + 0.001 L_adv`` (eqs. (3)-(5)).
* PConv U-Net (report §3.2, §4.2): loss of eq. (12) on irregular masks, then a fine-tuning phase with
  the encoder's BatchNorm frozen.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from inpaintlib.device import Distributed, all_ok
from inpaintlib.inference import inpaint
from inpaintlib.losses import (
    PConvLoss,
    context_encoder_discriminator_loss,
    context_encoder_generator_loss,
    discriminator_half_loss,
)
from inpaintlib.masks import center_patch_slice
from inpaintlib.models import ContextDiscriminator, ContextEncoder, PConvUNet, freeze_all_but_head, freeze_encoder_batchnorm
from inpaintlib.rundir import load_model
from inpaintlib.vgg import VGG16Features

from .config import CEConfig, PConvConfig, TrainConfig

__all__ = ["Recipe", "PConvRecipe", "CERecipe", "RECIPES"]


def _adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam over ``params`` (tensors, or param groups with an optional ``lr_scale``: the group then runs
    at ``lr * lr_scale``)."""
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    groups = [{**g, "lr": lr * g.get("lr_scale", 1.0)} for g in groups]
    # Fused (one kernel for all tensors) on CUDA and CPU; both are deterministic, so resume stays exact.
    return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), fused=device.type in ("cuda", "cpu"))


def _pconv_groups(net: PConvUNet, head_lr_scale: float) -> list[dict]:
    """The trainable parameters of ``net`` as param groups: the U-Net's, and the full-resolution head's
    (if any) at ``head_lr_scale`` times the learning rate."""
    head = {id(p) for p in net.head.parameters()} if net.head is not None else set()
    trainable = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in head]}]
    if head:
        groups.append({"params": [p for p in trainable if id(p) in head], "lr_scale": head_lr_scale})
    return [g for g in groups if g["params"]]  # with head_only the U-Net has none


def _head_args(net: nn.Module) -> dict[str, int]:
    """The constructor arguments of a network's head, if it has one (for ``model_args``)."""
    if net.head is None:
        return {}
    args = {"head_width": net.head.layers[0].out_channels}
    return {**args, "head_fill_iterations": net.head.fill_iterations} if net.head.fill_iterations else args


def _shape_text(net: nn.Module) -> str:
    """The settings that decide whether one network's weights fit another, e.g. "image_size 256, layers 7, width 32"."""
    return ", ".join(f"{k} {getattr(net, k)}" for k in ("image_size", "layers", "width", "bottleneck") if hasattr(net, k))


def _head_shapes(head: nn.Module | None) -> list[tuple[int, ...]] | None:
    return None if head is None else [tuple(t.shape) for t in head.state_dict().values()]


def _load_initial_weights(module: nn.Module, source: str) -> None:
    """Copy the inpainting model of another run into ``module`` (``init_from``: train a stored run
    further, on other data or another machine; optimiser state starts afresh)."""
    donor = load_model(source)
    if type(donor) is not type(module):
        raise ValueError(f"init_from {source} holds a {type(donor).__name__}, not a {type(module).__name__}")
    try:
        state = donor.state_dict()
        # A donor without a full-resolution head (or with a head of another kind) may start a model with
        # one: the new head keeps its own start (the last layer at zero) and is the only thing left out.
        head = getattr(module, "head", None)
        if head is not None and _head_shapes(getattr(donor, "head", None)) != _head_shapes(head):
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            state.update({f"head.{k}": v for k, v in head.state_dict().items()})
        module.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"init_from {source}: its weights do not fit this model (same width, layers and bottleneck needed; "
            f"it has {_shape_text(donor)}, this model {_shape_text(module)}): {str(error).splitlines()[0]}"
        ) from None


class Recipe:
    """What differs between the models: networks, optimizers, one training step, inpainting."""

    columns: tuple[str, ...] = ()  # the loss terms logged in history.csv
    channels_last_on_cpu = False  # whether config.channels_last applies on a CPU too (measured per model:
    # the PConv U-Net gains, the Context Encoder is about 50 % slower; bench/RESULTS.md)

    def __init__(self, config: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None, dd: Distributed):
        self.config, self.device, self.amp_dtype, self.dd = config, device, amp_dtype, dd
        self.networks: dict[str, nn.Module] = {}  # plain modules: state dicts, evaluation
        self.locals: dict[str, nn.Module] = {}  # the same, compiled if asked for
        self.runners: dict[str, nn.Module] = {}  # what the training step calls: locals, DDP-wrapped
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        use_cl = config.channels_last and (device.type == "cuda" or self.channels_last_on_cpu)
        self.memory_format = torch.channels_last if use_cl else torch.contiguous_format

    # -- setup helpers
    def _add_network(self, name: str, module: nn.Module) -> None:
        if name == "generator" and self.config.init_from:
            _load_initial_weights(module, self.config.init_from)
        if name == "generator" and self.config.head_only:
            freeze_all_but_head(module)
        module = module.to(self.device, memory_format=self.memory_format)
        self.networks[name] = module
        self.scalers[name] = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._wrap(name)

    def _wrap(self, name: str) -> None:
        module = self.networks[name]
        local = self.locals[name] = torch.compile(module) if self.config.compile else module
        if self.dd.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.runners[name] = nn.parallel.DistributedDataParallel(local, device_ids=ids)
        else:
            self.runners[name] = local

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _step(self, name: str, ok: bool) -> None:
        """Backward has run; step the optimizer of ``name`` unless a loss was not finite."""
        if ok:
            self.scalers[name].step(self.optimizers[name])
            self.scalers[name].update()

    def _backward(self, name: str, loss: Tensor) -> None:
        self.scalers[name].scale(loss).backward()

    def buffers(self) -> list[Tensor]:
        """Every network's buffers (BatchNorm statistics): put back after a skipped, non-finite step."""
        return [b for m in self.networks.values() for b in m.buffers()]

    # -- interface used by the loop
    def phase(self, step: int) -> str:
        return "train"

    def enter_phase(self, phase: str) -> None:
        pass

    def lr(self) -> dict[str, float]:
        return {}

    def model_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def train_step(self, images: Tensor, masks: Tensor) -> tuple[dict[str, Tensor], bool]:
        raise NotImplementedError

    def inpaint(self, images: Tensor, masks: Tensor) -> Tensor:
        """Composite of the generator's completion (eval mode, no gradients) under the run's autocast:
        the library's own :func:`inpaintlib.inference.inpaint`, so training reports what users get."""
        with self.autocast():
            return inpaint(self.networks["generator"], images, masks)

    def set_train(self, mode: bool) -> None:
        for m in self.networks.values():
            m.train(mode)

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {k: m.state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def configured_lr(self) -> dict[str, float]:
        """The learning rate the config gives each optimizer in the current phase."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore networks, optimizers and scalers; the optimizers then take the config's learning
        rates, which a resumed run may have changed (everything else of Adam's state is kept)."""
        for k, m in self.networks.items():
            m.load_state_dict(state["models"][k])
        lrs = self.configured_lr()
        for k, o in self.optimizers.items():
            scales = [group.get("lr_scale", 1.0) for group in o.param_groups]  # from the config, not the checkpoint
            o.load_state_dict(state["optimizers"][k])
            for group, scale in zip(o.param_groups, scales):
                group["lr_scale"], group["lr"] = scale, lrs[k] * scale
        for k, s in self.scalers.items():
            if state["scalers"].get(k):
                s.load_state_dict(state["scalers"][k])


class PConvRecipe(Recipe):
    """Report §3.2 / §4.2: eq. (12) on irregular masks; phase "finetune" freezes the encoder's BN."""

    columns = ("total", "valid", "hole", "perceptual", "style_out", "style_comp", "tv")
    channels_last_on_cpu = True
    phases = ("train", "finetune")

    def __init__(self, config: PConvConfig, device, amp_dtype, dd):
        super().__init__(config, device, amp_dtype, dd)
        net = PConvUNet(config.image_size, config.layers, config.width, config.head_width, config.head_fill_iterations)
        self._add_network("generator", net)
        features = VGG16Features(weights=config.vgg_weights)
        self.loss = PConvLoss(features, config.loss_weights).to(self.device, memory_format=self.memory_format)
        self.optimizers["generator"] = _adam(
            _pconv_groups(self.networks["generator"], config.head_lr_scale), config.lr, config.betas, device
        )
        self._phase = "train"

    def model_args(self) -> dict[str, Any]:
        net = self.networks["generator"]
        return {"image_size": net.image_size, "layers": net.layers, "width": net.width, **_head_args(net)}

    def phase(self, step: int) -> str:
        return "train" if step < self.config.steps else "finetune"

    def enter_phase(self, phase: str) -> None:
        if phase == self._phase:
            return
        if phase != "finetune":
            raise ValueError(f"cannot go from phase {self._phase!r} back to {phase!r}")
        net = self.networks["generator"]
        freeze_encoder_batchnorm(net)
        self._wrap("generator")  # DDP must be rebuilt: its set of parameters to reduce has changed
        groups = _pconv_groups(net, self.config.head_lr_scale)
        self.optimizers["generator"] = _adam(groups, self.config.finetune_lr, self.config.betas, self.device)
        self._phase = phase

    def lr(self) -> dict[str, float]:
        return {"lr": self.optimizers["generator"].param_groups[0]["lr"]}

    def configured_lr(self) -> dict[str, float]:
        return {"generator": self.config.finetune_lr if self._phase == "finetune" else self.config.lr}

    def train_step(self, images, masks):
        self.optimizers["generator"].zero_grad(set_to_none=True)
        with self.autocast():
            output = self.runners["generator"](images, masks)  # (N, 3, H, W) in [0, 1]
            terms = self.loss(output, images, masks)
        self._backward("generator", terms["total"])
        ok = all_ok(bool(torch.isfinite(terms["total"])), self.device, self.dd)
        self._step("generator", ok)
        return {k: terms[k].detach() for k in self.columns}, ok


class CERecipe(Recipe):
    """Report §3.1 / §4.1, Fig 1: per step one discriminator update, then one generator update."""

    columns = ("total", "rec", "adv", "d_loss", "d_acc")

    def __init__(self, config: CEConfig, device, amp_dtype, dd):
        super().__init__(config, device, amp_dtype, dd)
        self._add_network(
            "generator", ContextEncoder(config.bottleneck, config.width, config.head_width, config.head_fill_iterations)
        )
        self._add_network("discriminator", ContextDiscriminator(config.width))
        trainable = [p for p in self.networks["generator"].parameters() if p.requires_grad]  # head_only: the head's
        self.optimizers["generator"] = _adam(trainable, config.lr_g, config.betas, device)
        self.optimizers["discriminator"] = _adam(
            self.networks["discriminator"].parameters(), config.lr_d, config.betas, device
        )
        self.patch = center_patch_slice(config.image_size, config.patch_size)

    def model_args(self) -> dict[str, Any]:
        net = self.networks["generator"]
        return {"bottleneck": net.bottleneck, "width": net.width, **_head_args(net)}

    def lr(self) -> dict[str, float]:
        return {"lr": self.optimizers["generator"].param_groups[0]["lr"]}

    def configured_lr(self) -> dict[str, float]:
        return {"generator": self.config.lr_g, "discriminator": self.config.lr_d}

    def train_step(self, images, masks):
        c = self.config
        s = self.patch
        real = images * 2 - 1  # the Context Encoder works in [-1, 1] (report §3.1)
        real_patch = real[:, :, s, s]  # (N, 3, 64, 64)
        G, D = self.runners["generator"], self.runners["discriminator"]
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        with self.autocast():
            fake_patch = G(real * masks)  # (N, 3, 64, 64); the hole is filled with 0 = mid grey

        # Discriminator, eq. (4): real and generated patches in separate batches (as DCGAN and
        # Pathak do), each with its own forward/backward pair, which DDP also requires.
        with self.autocast():
            logit_real = D(real_patch)
        self._backward("discriminator", discriminator_half_loss(logit_real, real=True))
        with self.autocast():
            logit_fake = D(fake_patch.detach())
        self._backward("discriminator", discriminator_half_loss(logit_fake, real=False))
        d_terms = context_encoder_discriminator_loss(logit_real.detach(), logit_fake.detach())  # for the log
        ok_d = all_ok(bool(torch.isfinite(d_terms["total"])), self.device, self.dd)
        # Balance (not in the report): a discriminator that already tells this batch apart better than
        # d_max_accuracy is not updated, so it cannot win outright (the logged d_acc is the pre-update one).
        balanced = c.d_max_accuracy >= 1 or all_ok(
            float(d_terms["accuracy"]) <= c.d_max_accuracy, self.device, self.dd
        )
        self._step("discriminator", ok_d and balanced)

        # Generator, eq. (5), with fresh scores from the updated discriminator. The discriminator
        # is called without its DDP wrapper and with frozen parameters: no gradient is needed there.
        d_local = self.locals["discriminator"]
        d_local.requires_grad_(False)
        try:
            with self.autocast():
                g_terms = context_encoder_generator_loss(
                    fake_patch, real_patch, d_local(fake_patch), c.w_rec, c.w_adv, c.overlap, c.overlap_weight
                )
            self._backward("generator", g_terms["total"])
        finally:
            d_local.requires_grad_(True)
        ok_g = all_ok(bool(torch.isfinite(g_terms["total"])), self.device, self.dd)
        self._step("generator", ok_g)
        losses = {
            "total": g_terms["total"].detach(),
            "rec": g_terms["rec"].detach(),
            "adv": g_terms["adv"].detach(),
            "d_loss": d_terms["total"],
            "d_acc": d_terms["accuracy"],
        }
        return losses, ok_d and ok_g


RECIPES: dict[str, type[Recipe]] = {"ce": CERecipe, "pconv": PConvRecipe}
