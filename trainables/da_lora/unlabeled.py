"""Semi-supervised adaptation (AdaptFace 10.1.2, "semi-supervised with unlabeled thermal"):
target-domain images without identity labels, and a loss on them.

``unlabeled_data`` is either ``synthfaces:<domain>[+<domain>...]`` (those domains' images of
the training identities lose their labels: they leave the labelled training set and are
used unlabelled; the validation identities keep theirs, for validation only) or an image
folder (every image under it, any nesting, the folder names ignored as labels).

The loss is entropy minimisation (Grandvalet and Bengio, "Semi-supervised learning by
entropy minimization", NeurIPS 2004): the mean entropy of the identity posterior the CosFace
head gives an unlabelled image, ``softmax(s * cos(W, z))`` (the head's scale, no margin),
weighted by ``lambda_unlabeled``. Minimising it pulls each target image towards one identity
prototype, away from the decision boundaries, which is how target features come to lie where
the labelled source features are. Written here: pytorch-metric-learning has no unsupervised
term of this form, and the term is three lines on the head it already has.

The unlabelled images must not be the validation or evaluation identities' images: a study
that adapted to its test (or selection) images would report a transductive result as an
inductive one. ``check_disjoint`` refuses that in one line, by image content (the decoded
pixels of every validation and test image), and by identity name where the folder names its
people (``<identity>/<image>``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from trainables.data.sources import DataError, TrainSet

SYNTH_PREFIX = "synthfaces:"


def hidden_domains(reference: str | None) -> tuple[str, ...]:
    """The synthfaces domains ``unlabeled_data`` hides (empty for an image folder, or none)."""
    if not reference or not reference.startswith(SYNTH_PREFIX):
        return ()
    return tuple(d for d in reference.removeprefix(SYNTH_PREFIX).split("+") if d)


def split_hidden(train: TrainSet, hidden: tuple[str, ...]) -> tuple[TrainSet, TrainSet]:
    """(labelled, unlabelled): the rows of the hidden domains leave the training set, and the
    labelled set's domains are renumbered without them (the domain classifier and the
    per-domain adapters know only domains with labels)."""
    hide = np.isin(train.domain, [train.domains.index(d) for d in hidden])
    kept_domains = tuple(d for d in train.domains if d not in hidden)
    renumber = np.asarray([kept_domains.index(d) if d in kept_domains else -1 for d in train.domains])
    labelled = train.select(np.flatnonzero(~hide))
    labelled = replace(labelled, domain=renumber[labelled.domain], domains=kept_domains)
    unlabelled = train.select(np.flatnonzero(hide))
    unlabelled = replace(
        unlabelled, identity=np.full(len(unlabelled), -1, dtype=np.int64), identity_names=None, domains=hidden
    )
    return labelled, unlabelled


def read_unlabeled_folder(root: str, image_size: int, *, verify: bool, log) -> tuple[TrainSet, tuple[str, ...]]:
    """Every image under ``root`` as an unlabelled set (rows of the shared decoded-image cache;
    an unreadable file is skipped), and the folder names that name people (``<name>/<image>``
    directly under ``root``, for the identity check)."""
    from trainables.data.image_cache import Rows, image_files
    from trainables.data.sources import _files

    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"unlabeled_data {root}: no such folder (an image folder, or synthfaces:<domain>)")
    paths = _files(folder)
    if not paths:
        raise DataError(f"unlabeled_data {root}: no image files under it")
    cache = image_files(paths, image_size, verify=verify, log=log)
    failed = {row for row, _ in cache.failed}
    keep = [i for i in range(len(paths)) if i not in failed]
    if not keep:
        raise DataError(f"unlabeled_data {root}: none of its {len(paths)} image files could be read")
    unlabelled = TrainSet(
        identity=np.full(len(keep), -1, dtype=np.int64),
        domain=np.zeros(len(keep), dtype=np.int64),
        domains=("unlabeled",),
        fingerprint=hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16],
        images=Rows(cache.images, keep),
        paths=tuple(paths[i] for i in keep),
        skipped=tuple((paths[row], why) for row, why in cache.failed),
    )
    names = tuple(
        sorted({Path(p).relative_to(folder).parts[0] for p in paths if len(Path(p).relative_to(folder).parts) > 1})
    )
    return unlabelled, names


def _digests(images) -> set[bytes]:
    """The content digest of each image (decoded pixels at the trial's size)."""
    out = set()
    for start in range(0, len(images), 512):
        block = np.asarray(images[np.arange(start, min(start + 512, len(images)))])
        out.update(hashlib.sha256(np.ascontiguousarray(img).tobytes()).digest() for img in block)
    return out


def check_disjoint(unlabelled: TrainSet, names: tuple[str, ...], sets: dict[str, tuple[object, set[str]]]) -> None:
    """Refuse unlabelled images that are a validation or evaluation set's images (by decoded
    content), or people those sets name (by folder name). ``sets``: name -> (its images, an
    indexable uint8 array or rows, or None; the identity names it holds)."""
    mine = _digests(unlabelled.images if not isinstance(unlabelled.images, torch.Tensor) else unlabelled.images.numpy())
    for what, (images, people) in sets.items():
        if images is not None and len(images):
            shared = mine & _digests(images)
            if shared:
                raise DataError(
                    f"unlabeled_data: {len(shared)} of its images are images of the {what} "
                    "(adapting to them would make its results transductive): give images of other people"
                )
        both = sorted(set(names) & set(people))
        if both:
            raise DataError(
                f"unlabeled_data: its folders name {len(both)} people of the {what} (e.g. {', '.join(both[:3])}): "
                "give images of other people"
            )


def entropy(head_weight: torch.Tensor, z: torch.Tensor, scale: float) -> torch.Tensor:
    """Mean entropy of the CosFace head's identity posterior of each embedding in ``z``:
    ``p = softmax(s * cos(W, z))``, ``H = -sum p log p`` (Grandvalet and Bengio 2004)."""
    cos = torch.nn.functional.normalize(z.float(), dim=1) @ torch.nn.functional.normalize(head_weight.float(), dim=0)
    logp = torch.log_softmax(scale * cos, dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


class UnlabeledBatches:
    """Random batches of the unlabelled set, one beside each labelled batch (without
    replacement within a pass; the set is reshuffled when it runs out)."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, min(batch_size, n)
        self.order: np.ndarray = np.empty(0, dtype=np.int64)

    def next(self, generator: torch.Generator) -> np.ndarray:
        if len(self.order) < self.batch_size:
            self.order = torch.randperm(self.n, generator=generator).numpy()
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return batch
