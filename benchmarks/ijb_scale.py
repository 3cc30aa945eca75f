"""IJB-C's template 1:1 at its real size: the streamed evaluation (``trainables.evaluation.ijb``:
a chunk of embeddings at a time into its media's sums, template pairs scored in chunks) against
the whole-array computation (every embedding held, ``protocols.template_features`` and one
``template_scores`` over every pair), the latter only where it fits.

    .venv/bin/python benchmarks/ijb_scale.py                        # 5% and 100% of IJB-C; ~3 min
    .venv/bin/python benchmarks/ijb_scale.py --fractions 0.05 0.2   # a quicker look

IJB-C's 1:1 protocol: 469,375 images, 23,124 templates, 15,658,489 template pairs
(insightface's ``ijbc_face_tid_mid.txt`` and ``ijbc_template_pair_label.txt``). A fraction f
keeps f of each: the images split into templates of media of frames at IJB-C's averages (about
20 images and 5 media a template), the pairs drawn over the templates. The embeddings are
random (512 dimensions, ArcFace's), made a chunk at a time by the embed function, so no model
or image is involved: what is measured is the protocol's own cost. Each arm runs in a fresh
process; a thread samples its anonymous resident memory (``RssAnon``) every 5 ms, and its
peak above the process's start (Python, numpy and torch imported) is the figure. At the
smallest fraction both arms run and their template scores are compared (they must agree).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES, TEMPLATES, PAIRS, DIM = 469_375, 23_124, 15_658_489, 512
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_memory import PEAK_SAMPLER  # noqa: E402  (beside this script)

ARM = (
    PEAK_SAMPLER
    + r"""
arm, fraction, dim = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
from trainables.evaluation import ijb
from trainables.evaluation.ijb import IjbBenchmark, IjbFiles
images, templates, pairs = (int(round(n * fraction)) for n in (%d, %d, %d))
rng = np.random.default_rng(0)
template = np.sort(rng.integers(0, templates, images))
media = template * 8 + rng.integers(0, 8, images)  # up to 8 media a template: about 5 drawn from 20 images
first, second = rng.integers(0, templates, pairs), rng.integers(0, templates, pairs)
first, second = np.unique(template)[first %% len(np.unique(template))], np.unique(template)[second %% len(np.unique(template))]
label = (first == second).astype(np.int64)
files = IjbFiles("ijbc", [], template, media, first, second, label)
bench = IjbBenchmark("ijbc", torch.arange(images), files)  # rows stand for images: the embed function makes them

def embed(rows):  # the same vector for an image whichever chunk it comes in
    g = torch.Generator().manual_seed(int(rows[0]))
    return torch.nn.functional.normalize(torch.randn(len(rows), dim, generator=g), dim=1)

base = anon_kib()
t0 = time.perf_counter()
if arm == "streamed":
    ids, feats = ijb.streamed_template_features(embed, bench)
    scores = ijb.chunked_scores(ids, feats, first, second)
else:  # every embedding held, the protocol's whole-array functions
    from trainables.evaluation.protocols import template_features, template_scores
    chunks = [embed(torch.arange(s, min(s + ijb.CHUNK_IMAGES, images))) for s in range(0, images, ijb.CHUNK_IMAGES)]
    ids, feats = template_features(torch.cat(chunks).numpy(), template, media)
    scores = template_scores(ids, feats, first, second).astype(np.float32)
seconds = time.perf_counter() - t0
stop.set()
np.save(sys.argv[4], scores)
print(json.dumps({"arm": arm, "fraction": fraction, "images": images, "templates": int(len(ids)), "pairs": pairs,
                  "seconds": round(seconds, 1), "peak_mib": round((peak[0] - base) / 1024)}))
"""
    % (IMAGES, TEMPLATES, PAIRS)
)


def run(arm: str, fraction: float, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ARM, arm, str(fraction), str(DIM), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"},
    )
    if done.returncode:
        raise SystemExit(f"{arm} at {fraction}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import tempfile

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 1.0])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = min(args.fractions)
        for fraction in sorted(args.fractions):
            rows.append(run("streamed", fraction, Path(tmp) / f"streamed{fraction}.npy"))
            print(rows[-1], flush=True)
        rows.append(run("whole", small, Path(tmp) / "whole.npy"))
        print(rows[-1], flush=True)
        a, b = np.load(Path(tmp) / f"streamed{small}.npy"), np.load(Path(tmp) / "whole.npy")
        print(f"scores at {small:g}: streamed and whole agree to {float(np.abs(a - b).max()):.1e}")
    by = {(r["arm"], r["fraction"]): r for r in rows}
    largest = max(args.fractions)
    print(
        f"streamed, {largest:g} against {small:g}: memory x{by[('streamed', largest)]['peak_mib'] / max(by[('streamed', small)]['peak_mib'], 1):.2f} "
        f"for x{largest / small:g} the data; at {small:g}, whole against streamed: memory "
        f"x{by[('whole', small)]['peak_mib'] / max(by[('streamed', small)]['peak_mib'], 1):.2f}, time "
        f"x{by[('whole', small)]['seconds'] / max(by[('streamed', small)]['seconds'], 0.1):.2f}"
    )


if __name__ == "__main__":
    main()
