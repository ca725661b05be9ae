"""What each stage of docs/method.md §3 starts from, loads, freezes and trains.

- Stage 1: a model without the fusion module, from scratch; everything trains.
- Stage 2: a model with the fusion module; the part encoders (`LocalLayer_*`) and the
  global encoder (`GlobalInfo`) are copied from a stage-1 checkpoint and frozen; the
  fusion module and the decoders (whose inputs grow from 2 to 3 latents) train.
- Stage 3: the whole stage-2 model, loaded and fine-tuned.

The authors selected "the first 317 state-dict entries" and froze "the first 167
parameters", which only fits filter widths 3,3,3,3,3. Here the selection is by module
name, which gives the same tensors for that architecture (golden/stage2_map.json) and
the intended ones for every other.

Frozen encoders stay in train mode by default, as in the authors' stage 2: their
BatchNorm running statistics keep updating and their dropout stays on. The published
models were made that way; `frozen_eval` switches it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from rie_cli.errors import RieError
from rie_cli.model import ModelConfig, build_model
from rie_cli.skeleton import Skeleton
from rie_cli.training.options import TrainOptions

@dataclass
class StageModel:
    """The model a stage trains, with what was loaded into it and what is frozen."""

    model: nn.Module
    config: ModelConfig
    loaded: list[str] = field(default_factory=list)  # state-dict keys taken from --init
    frozen_modules: list[str] = field(default_factory=list)  # module names kept fixed
    source: str = "scratch"  # what the weights came from, for people

    @property
    def frozen(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if not p.requires_grad]

    @property
    def trainable(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]


def in_modules(name: str, modules) -> bool:
    """Whether the parameter/buffer `name` lies inside one of the named top-level modules."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def encoder_modules(model: nn.Module) -> list[str]:
    """What stage 2 loads from stage 1 and freezes: the model's own list (every model
    `build_model` makes has one; a VideoPose3D model's is empty, it has no stage 2)."""
    return list(model.encoder_module_names())


def freeze(model: nn.Module, modules) -> None:
    for name, param in model.named_parameters():
        if in_modules(name, modules):
            param.requires_grad_(False)


def set_frozen_mode(model: nn.Module, modules, frozen_eval: bool) -> None:
    """After `model.train()`: optionally put the frozen modules back into eval mode."""
    if frozen_eval:
        for name in modules:
            getattr(model, name).eval()


def transfer_encoders(model: nn.Module, stage1_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy the encoders' entries of a stage-1 state dict into a stage-2 model, freeze them.

    Returns the copied keys. A missing entry or one of another shape means the
    checkpoint is not a stage-1 model of this architecture: RieError.
    """
    modules = encoder_modules(model)
    own = model.state_dict()
    keys = [k for k in own if in_modules(k, modules)]
    for key in keys:
        if key not in stage1_state:
            raise RieError(f"the stage-1 checkpoint lacks '{key}': it is not a compatible stage-1 model")
        if tuple(stage1_state[key].shape) != tuple(own[key].shape):
            raise RieError(
                f"the stage-1 checkpoint's '{key}' has shape {tuple(stage1_state[key].shape)}, "
                f"this model needs {tuple(own[key].shape)}: not a compatible stage-1 model"
            )
    model.load_state_dict({k: stage1_state[k] for k in keys}, strict=False)
    freeze(model, modules)
    return keys


def _stage1_config(options: TrainOptions, skeleton: Skeleton) -> ModelConfig:
    return ModelConfig(
        arch=options.arch,
        num_joints=skeleton.num_joints,
        skeleton=skeleton.name,
        filter_widths=tuple(options.filter_widths),
        channels=options.channels,
        latent=options.latent,
        fc_width=options.fc_width,
        dropout=options.dropout,
        causal=options.causal,
        fusion=False,
        target=options.target or "pose",
    )


def _check_against_init(options: TrainOptions, config: ModelConfig, init_name: str) -> None:
    """Architecture options given together with --init must agree with the checkpoint."""
    for option, value in (("arch", config.arch), ("filter_widths", config.filter_widths),
                          ("channels", config.channels), ("latent", config.latent), ("fc_width", config.fc_width),
                          ("causal", config.causal)):
        given = getattr(options, option)
        if given is not None and (tuple(given) if option == "filter_widths" else given) != value:
            shown = ",".join(map(str, value)) if option == "filter_widths" else value
            raise RieError(
                f"--init {init_name} has {option.replace('_', '-')} {shown}, which contradicts "
                f"--{option.replace('_', '-')}; leave it out (stages 2 and 3 keep the --init architecture)"
            )


def _fill_arch_options(options: TrainOptions, config: ModelConfig) -> None:
    options.arch = config.arch
    options.filter_widths = tuple(config.filter_widths)
    options.channels = config.channels
    options.latent = config.latent
    options.fc_width = config.fc_width
    options.causal = config.causal


def _load_init(path):
    from rie_cli.model.checkpoint import load_checkpoint

    if not path.exists():
        raise RieError(f"--init checkpoint not found: {path}")
    return load_checkpoint(path, device="cpu")


def _check_skeleton(config: ModelConfig, skeleton: Skeleton, what: str) -> None:
    if config.num_joints != skeleton.num_joints or config.skeleton != skeleton.name:
        raise RieError(
            f"{what} is a model of skeleton {config.skeleton} ({config.num_joints} joints), "
            f"the data uses {skeleton.name} ({skeleton.num_joints} joints)"
        )


def start_stage(options: TrainOptions, skeleton: Skeleton) -> StageModel:
    """Build the model of a new run of `options.stage` (not a resumed one).

    Fills the architecture options of stages 2 and 3 from the --init checkpoint.
    """
    if options.stage == 1:
        config = _stage1_config(options, skeleton)
        return StageModel(build_model(config), config)

    init = _load_init(options.init)
    name = options.init.name
    _check_skeleton(init.config, skeleton, f"--init {name}")
    if options.stage == 2:
        if init.config.arch != "rie" or init.config.fusion or init.stage != 1:
            kind = "a VideoPose3D model" if init.config.arch != "rie" else f"a stage-{init.stage} model"
            raise RieError(f"--init {name} is {kind}: stage 2 starts from an RIE stage-1 checkpoint")
        _check_against_init(options, init.config, name)
        config = replace(init.config, fusion=True, dropout=options.dropout)
        model = build_model(config)
        loaded = transfer_encoders(model, init.model.state_dict())
        _fill_arch_options(options, config)
        return StageModel(model, config, loaded, encoder_modules(model), f"stage-1 encoders of {name}")

    # Stage 3: everything from a stage-2 (or the authors' full) model.
    if init.config.arch != "rie" or not init.config.fusion:
        kind = "a VideoPose3D model" if init.config.arch != "rie" else "a stage-1 model (no fusion module)"
        raise RieError(f"--init {name} is {kind}: stage 3 starts from an RIE stage-2 checkpoint")
    _check_against_init(options, init.config, name)
    config = replace(init.config, dropout=options.dropout)
    model = build_model(config)
    state = init.model.state_dict()
    model.load_state_dict(state)
    _fill_arch_options(options, config)
    return StageModel(model, config, list(state), [], f"all weights of {name}")


def start_at_mean_root(model: nn.Module, trajectories: list) -> None:
    """Start a trajectory model's output bias at the training set's mean root (metres).

    The root is metres away from the camera; from a zero bias the first epochs would
    be spent walking the output out to that depth, one learning-rate step at a time.
    From the mean the model starts at the "mean root" baseline and learns deviations.
    """
    mean = torch.as_tensor(np.concatenate(trajectories).mean(axis=0), dtype=torch.float32)  # (3,)
    with torch.no_grad():
        model.shrink.bias.copy_(mean)


def resume_stage(options: TrainOptions, config: ModelConfig, state: dict, skeleton: Skeleton) -> StageModel:
    """Rebuild the model of an interrupted run from its checkpoint (weights and freezing)."""
    _check_skeleton(config, skeleton, "the --resume checkpoint")
    model = build_model(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RieError(f"the --resume checkpoint's weights do not fit its model config: {first}") from None
    frozen = encoder_modules(model) if options.stage == 2 else []
    freeze(model, frozen)
    return StageModel(model, config, list(state), frozen, f"resumed from {options.resume.name}")
