"""Configuration of the ``da_lora`` trainable: one frozen, validated object per trial."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from trainables.config_base import TrainableConfig
from trainables.evaluation.keys import (
    CROSS_DOMAIN,
    IDENTIFICATION_KEYS,
    OPEN_SET,
    TEMPLATES,
    protocol_keys,
    set_names,
    verification_keys,
)

if TYPE_CHECKING:
    from trainables.data.synthfaces import SynthFacesSpec


#: The validation set of real training data held out of its identities: ``val/heldout/...``.
HELDOUT = "heldout"
#: A benchmark's name becomes part of metric keys (``eval/<name>/acc``).
BENCHMARK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class DaLoraConfig(TrainableConfig):
    """Every key a ``da_lora`` study may set; unknown keys and out-of-range values are refused.

    The components of DA-LoRA and their switches: domain-specific LoRA (``domain_lora``,
    ``num_domains`` adapters mixed by the domain classifier), the domain-classifier loss
    (``lambda_domain``), the contrastive domain-alignment loss (``lambda_contrastive``) and
    MAML initialisation of the LoRA weights (``maml_inner_steps``). All off is standard LoRA.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = (
        "backbone",
        "unlabeled_data",
        "train_data",
        "benchmarks",
        "val_data",
        "ijb",
        "identification",
        "attributes",
    )

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="seed of initialisation, data order and dropout")
    # -- backbone and adaptation
    backbone: str = Field(
        "standin",
        description="'standin', a timm or Hugging Face checkpoint directory, "
        "'timm:<dir>', or 'hf:<repo id or dir>' (DINOv2, CLIP vision)",
    )
    adaptation: Literal["none", "lora", "full"] = Field(
        "lora", description="none: frozen backbone, head only; lora: LoRA adapters; full: every weight trains"
    )
    lora_rank: int = Field(8, gt=0, le=1024)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: tuple[str, ...] = Field(
        ("auto",),
        min_length=1,
        description="suffixes of linear layer names; [auto]: the attention "
        "projections found in the model (q_proj+v_proj or qkv)",
    )
    domain_lora: bool = Field(
        False,
        description="num_domains LoRA adapters per layer, mixed per sample by "
        "the domain classifier (False: one shared adapter, peft)",
    )
    num_domains: int | None = Field(
        None, ge=1, description="domain groups (classifier classes, adapters); None: every domain of the training data"
    )
    # -- losses
    cosface_scale: float = Field(30.0, gt=0, description="CosFace s")
    cosface_margin: float = Field(0.25, ge=0, lt=1, description="CosFace m (cosine margin)")
    lambda_contrastive: float = Field(
        0.0,
        ge=0,
        description="weight of the contrastive domain-alignment loss (same identity in any domain = positive)",
    )
    contrastive_temperature: float = Field(0.1, gt=0)
    lambda_domain: float = Field(0.0, ge=0, description="weight of the domain-classifier loss")
    # -- semi-supervised adaptation (trainables/da_lora/unlabeled.py)
    unlabeled_data: str | None = Field(
        None,
        description="target images without labels: synthfaces:<domain>[+<domain>] (those domains' training "
        "images lose their labels) or an image folder; never the validation or evaluation people's images",
    )
    lambda_unlabeled: float = Field(
        0.0,
        ge=0,
        description="weight of entropy minimisation on the unlabeled images (Grandvalet and Bengio 2004): "
        "the entropy of the CosFace head's identity posterior",
    )
    # -- MAML initialisation of the LoRA weights
    maml_inner_steps: int = Field(0, ge=0, le=100, description="inner-loop steps per task; 0: no MAML")
    maml_inner_lr: float = Field(0.01, gt=0)
    maml_meta_steps: int = Field(12, ge=1, description="outer (meta) updates, one task each, domains in turn")
    maml_outer_lr: float = Field(1e-3, gt=0)
    maml_batch_size: int = Field(32, ge=2, description="images in a task's support set (and in its query set)")
    maml_first_order: bool = Field(False, description="first-order MAML (no second derivatives)")
    # -- optimisation
    lr: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(0.5, ge=0, description="linear warm-up length, then cosine decay")
    epochs: int = Field(3, gt=0, le=10_000)
    batch_size: int = Field(64, gt=1)
    images_per_identity_in_batch: int = Field(4, ge=1, description="a batch holds batch_size / this identities")
    eval_every: int = Field(
        1,
        ge=1,
        description="evaluate every this many epochs (and always after the last); "
        "epochs in between report training metrics only",
    )
    # -- data
    train_data: str = Field(
        "synthfaces",
        description="'synthfaces', an image folder (identity/*.jpg or "
        "domain/identity/*.jpg) or a CSV manifest (path,identity,domain)",
    )
    benchmarks: dict[str, str] = Field(
        default_factory=dict, description="name -> LFW-style pairs.txt or insightface .bin verification benchmark"
    )
    ijb: dict[str, str] = Field(
        default_factory=dict,
        description="name -> IJB-B/C folder (meta/<ijbb|ijbc>_face_tid_mid.txt, _template_pair_label.txt, "
        "loose_crop/; with the 1:N lists also open-set): eval/<name>/templates/... and eval/<name>/open_set/...",
    )
    identification: dict[str, str] = Field(
        default_factory=dict,
        description="name -> TinyFace-style folder (Probe/, Gallery_Match/, optional Gallery_Distractor/; "
        "<label>_<k>.jpg): closed-set identification with distractors, eval/<name>/rank1 ...",
    )
    attributes: str | None = Field(
        None,
        description="CSV 'identity,<attribute>' of the pair-list benchmarks' people: the report's fairness "
        "across that attribute's groups on each of them",
    )
    val_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="training identities held out for validation "
        "(val/...: identity-disjoint from training and test, twins together); every choice "
        "a study makes uses them. 0: no held-out validation identities",
    )
    val_data: dict[str, str] = Field(
        default_factory=dict,
        description="name -> pairs.txt or .bin validation "
        "benchmark (val/<name>/...), identities disjoint from training and test",
    )
    samples_per_identity: int | None = Field(None, ge=1, description="training images kept per identity (few-shot)")
    flip_test: bool = Field(True, description="embed each evaluation image and its mirror image, summed")
    save_embeddings: bool = Field(
        False,
        description="keep the held-out identities' embeddings (float16, with identity and domain) in each "
        "checkpoint's evaluation.npz, for the report's t-SNE",
    )
    image_size: int = Field(32, ge=16, le=256, multiple_of=8, description="synthfaces resolution")
    data_seed: int = Field(0, ge=0, description="synthfaces seed (identities and images)")
    synth_train_identities: int = Field(120, ge=2, description="synthfaces adaptation identities")
    synth_train_images: int = Field(4, ge=2, description="synthfaces adaptation images per identity and domain")
    # -- hardware
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when a GPU is visible")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA")
    num_workers: int | None = Field(None, ge=0, description="DataLoader workers for image files (None: auto)")

    @model_validator(mode="after")
    def _consistent(self) -> "DaLoraConfig":
        if self.domain_lora and self.adaptation != "lora":
            raise ValueError("domain_lora needs adaptation: lora")
        if self.maml_inner_steps and self.adaptation != "lora":
            raise ValueError("maml_inner_steps > 0 meta-learns LoRA weights: it needs adaptation: lora")
        if self.adaptation == "none" and (self.lambda_contrastive or self.lambda_domain or self.lambda_unlabeled):
            raise ValueError(
                "lambda_contrastive, lambda_domain and lambda_unlabeled act on the backbone's features: with "
                "adaptation: none nothing they could change trains"
            )
        self._check_unlabeled()
        for field_name, names in (
            ("benchmarks", self.benchmarks),
            ("val_data", self.val_data),
            ("ijb", self.ijb),
            ("identification", self.identification),
        ):
            for name in names:
                if not BENCHMARK_NAME.fullmatch(name):
                    raise ValueError(
                        f"{field_name}: name {name!r} is not a metric name part (letters, digits, '_', '-', '.'; "
                        "starting with a letter or digit)"
                    )
                if name in self._builtin_sets():
                    raise ValueError(
                        f"{field_name}: name {name!r} is a built-in set of this trainable "
                        f"({', '.join(sorted(self._builtin_sets()))}); its metrics would overwrite that set's: rename it"
                    )
        if self.attributes is not None and all(Path(p).suffix == ".bin" for p in self.benchmarks.values()):
            raise ValueError(
                "attributes: no benchmark names its people, so none can be graded (a pair list names them; a .bin does not)"
            )
        for a, b in (("ijb", "benchmarks"), ("identification", "benchmarks"), ("identification", "ijb")):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if both:
                raise ValueError(
                    f"{a} and {b} both name {both[0]!r}: their metrics share eval/{both[0]}/...; rename one"
                )
        if self.batch_size % self.images_per_identity_in_batch:
            raise ValueError("batch_size must be a multiple of images_per_identity_in_batch")
        if self.batch_size // self.images_per_identity_in_batch < 2:
            raise ValueError("a batch must hold at least two identities")
        return self

    def _check_unlabeled(self) -> None:
        from trainables.da_lora.unlabeled import SYNTH_PREFIX, hidden_domains

        if self.lambda_unlabeled and not self.unlabeled_data:
            raise ValueError("lambda_unlabeled > 0 needs unlabeled_data (synthfaces:<domain> or an image folder)")
        if not (self.unlabeled_data or "").startswith(SYNTH_PREFIX):
            return
        if self.train_data != "synthfaces":
            raise ValueError(
                f"unlabeled_data {self.unlabeled_data}: synthfaces domains need train_data: synthfaces (give an image folder)"
            )
        hidden, domains = hidden_domains(self.unlabeled_data), self.synthfaces().domains
        unknown = [d for d in hidden if d not in domains]
        if not hidden or unknown:
            raise ValueError(
                f"unlabeled_data {self.unlabeled_data}: expected synthfaces:<domain>[+<domain>] with domains of "
                f"{', '.join(domains)}"
            )
        if domains[0] in hidden:
            raise ValueError(
                f"unlabeled_data {self.unlabeled_data}: {domains[0]} is the source domain (pre-training, galleries); "
                "hide target domains"
            )

    def _builtin_sets(self) -> set[str]:
        """The pair sets the trainable names itself (``eval/<set>/...``, ``val/<set>/...``)."""
        sets = {CROSS_DOMAIN, "mean", HELDOUT, TEMPLATES, OPEN_SET}
        if self.train_data == "synthfaces":
            sets |= set(self.synthfaces().domains)
        return sets

    @property
    def uses_classifier(self) -> bool:
        """The domain classifier exists when it routes adapters or has a loss of its own."""
        return self.domain_lora or self.lambda_domain > 0

    def domain_components(self) -> list[str]:
        """The components that act per domain and do nothing with one domain group: domain
        LoRA (one adapter), the domain classifier (one class), MAML (one task)."""
        parts = []
        if self.domain_lora and self.adaptation == "lora":
            parts.append("domain_lora (one adapter per domain)")
        if self.lambda_domain > 0:
            parts.append("lambda_domain (the domain classifier)")
        if self.maml_inner_steps > 0:
            parts.append("maml_inner_steps (MAML's per-domain tasks)")
        return parts

    def synthfaces(self) -> "SynthFacesSpec":
        from trainables.data.synthfaces import SynthFacesSpec

        return SynthFacesSpec(
            resolution=self.image_size,
            seed=self.data_seed,
            train_identities=self.synth_train_identities,
            train_images=self.synth_train_images,
        )


def metric_keys(cfg: DaLoraConfig) -> list[str]:
    """Every key the final report of a ``da_lora`` trial carries (``Evaluator`` and
    ``run``), from the config alone: what a study's metric may name."""
    keys = ["train/loss", "train/cosface_loss", "train/epoch_s", "train/epochs", "train/images_per_s"]
    keys += ["train/contrastive_loss"] * bool(cfg.lambda_contrastive) + ["train/domain_loss"] * bool(cfg.lambda_domain)
    keys += ["train/unlabeled_loss"] * bool(cfg.lambda_unlabeled)

    def benchmark_keys(prefix: str, names: list[str]) -> list[str]:
        return verification_keys(prefix, sorted(names) + (["mean"] if len(names) > 1 else []))

    if cfg.train_data == "synthfaces":
        sets = set_names(tuple(cfg.synthfaces().domains))
        keys += verification_keys("eval", sets) + protocol_keys("eval", distractors=True)
        if cfg.val_fraction:
            keys += verification_keys("val", sets)
    elif cfg.val_fraction:
        keys += verification_keys("val", [HELDOUT])
    keys += benchmark_keys("eval", list(cfg.benchmarks)) + benchmark_keys("val", list(cfg.val_data))
    for name, root in sorted(cfg.ijb.items()):
        keys += ijb_keys(f"eval/{name}", root)
    for name in sorted(cfg.identification):
        keys += [f"eval/{name}/{k}" for k in IDENTIFICATION_KEYS]
    return keys


def ijb_keys(prefix: str, root: str) -> list[str]:
    """An IJB folder's keys: the template protocol's, and the open set's where the folder has its
    1:N lists (a look at the folder's file names; a folder without its metadata reports nothing
    and is refused when the study prepares)."""
    from trainables.evaluation.ijb import IjbError, open_set_lists

    keys = protocol_keys(prefix)  # templates and the open set (no distractor gallery in IJB's lists)
    try:
        one_to_n = open_set_lists(root) is not None
    except IjbError:
        one_to_n = False
    return keys if one_to_n else [k for k in keys if k.startswith(f"{prefix}/{TEMPLATES}/")]
