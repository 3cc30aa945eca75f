"""Command line: a table of small commands (Optuna's ``cli.py`` pattern)."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from orchestrator.errors import RunStopped, UserError, is_disk_full, one_line


class Command:
    name: str = ""
    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class ListStudies(Command):
    name, help = "list", "print the shipped studies, one per line, name first"

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.studies import describe_shipped

        for study, description in describe_shipped():
            print(f"{study}\t{description}")
        return 0


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2,3, got {text!r}") from None


def _track_list(text: str) -> list[str]:
    from orchestrator.tracking import parse_track

    try:
        return parse_track(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"--track {text!r}: ")) from None


class Run(Command):
    name, help = "run", "run a study (a shipped name, a path to a YAML spec, or `confirm --from DIR`)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", help="shipped study name or path to a YAML spec")
        parser.add_argument("--out", type=Path, help="run directory (default: runs/<study>-<timestamp>)")
        parser.add_argument("--quick", action="store_true", help="the same study scaled down to a smoke run")
        parser.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a base-config value (repeatable)"
        )
        parser.add_argument("--address", help="run on an existing Ray cluster (default: RAY_ADDRESS or a local Ray)")
        parser.add_argument(
            "--gpus-per-trial", type=float, help="fractional GPUs per trial (0.25 packs four on one GPU)"
        )
        parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the spec's, else 1)")
        parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
        parser.add_argument(
            "--dashboard-host",
            default="127.0.0.1",
            help="only when the dashboard must be reachable beyond this machine",
        )
        parser.add_argument(
            "--track",
            type=_track_list,
            metavar="TRACKERS",
            help="also write each trial to these trackers, comma-separated: tensorboard, wandb, mlflow "
            "(in the run's tracking/ folder; W&B offline unless a key is configured; none: no tracker; "
            "default: the spec's tracking.backends)",
        )
        confirm = parser.add_argument_group("run confirm --from DIR")
        confirm.add_argument(
            "--from",
            dest="from_dir",
            type=Path,
            metavar="DIR",
            help="the finished search whose best configs `run confirm` reruns",
        )
        confirm.add_argument(
            "--top-k", type=int, help="rerun this many of the best configs (default: the search spec's confirm.top_k)"
        )
        confirm.add_argument(
            "--seeds", type=_seed_list, help="comma-separated seeds of the reruns (default: the spec's confirm.seeds)"
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.run import RunOptions, run_study

        run_study(
            RunOptions(
                study=args.study,
                out=args.out,
                quick=args.quick,
                set=args.set,
                address=args.address,
                gpus_per_trial=args.gpus_per_trial,
                cpus_per_trial=args.cpus_per_trial,
                max_concurrent=args.max_concurrent,
                dashboard_host=args.dashboard_host,
                from_dir=args.from_dir,
                top_k=args.top_k,
                seeds=args.seeds,
                track=args.track,
            )
        )
        return 0


class Report(Command):
    name, help = "report", "regenerate DIR/report from DIR's results (no Ray needed)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a run directory")

    def take_action(self, args: argparse.Namespace) -> int:
        from reports import build_report

        print(f"Report: {build_report(args.dir, warn=print)}")
        return 0


class Plan(Command):
    name, help = "plan", "what a finished (pilot) run could detect, and the seeds needed to detect a given effect"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a finished run directory")
        parser.add_argument(
            "--effect",
            type=float,
            help="the smallest difference in the study metric that matters (default: the spec's report.min_effect)",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from reports.plan import plan_text

        if args.effect is not None and not (args.effect > 0 and math.isfinite(args.effect)):
            raise UserError(f"--effect {args.effect:g}: expected a positive, finite difference such as 0.005")
        print(plan_text(args.dir, effect=args.effect), end="")
        return 0


def _cluster_arguments(parser: argparse.ArgumentParser, address_help: str) -> None:
    """``--address`` and ``--dashboard-host`` of the commands that go on with a run's trials."""
    parser.add_argument("--address", help=f"{address_help} (default: RAY_ADDRESS or a local Ray)")
    parser.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="only when the dashboard must be reachable beyond this machine",
    )


class Resume(Command):
    name, help = (
        "resume",
        "continue a run whose driver stopped (killed, Ctrl-C); a finished run gets its report rebuilt",
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a run directory")
        _cluster_arguments(parser, "the Ray cluster to continue on")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.resume import resume_run

        resume_run(args.dir, address=args.address, dashboard_host=args.dashboard_host)
        return 0


class Extend(Command):
    name, help = (
        "extend",
        "add trials to a finished run (more seeds, what an edited spec adds, a search's samples) "
        "without rerunning any, then its report",
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a finished run directory")
        parser.add_argument(
            "--seeds", type=_seed_list, help="comma-separated seeds to add, for every variant or point (e.g. 3,4,5)"
        )
        parser.add_argument(
            "--spec",
            type=Path,
            metavar="FILE",
            help="the run's spec, edited: the variants, axis points or seeds it adds (the rest must stay as run)",
        )
        parser.add_argument("--samples", type=int, help="a search: this many more trials, sampled where it stopped")
        _cluster_arguments(parser, "the Ray cluster to run on")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.extend import extend_run

        extend_run(
            args.dir,
            seeds=args.seeds,
            spec_path=args.spec,
            samples=args.samples,
            address=args.address,
            dashboard_host=args.dashboard_host,
        )
        return 0


class Status(Command):
    name, help = "status", "where a run stands, from its directory alone (also while it runs)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a run directory")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.status import print_status

        print_status(args.dir)
        return 0


class ExportSynthfaces(Command):
    name, help = "export-synthfaces", "write synthfaces in the notes' formats (person, twin and feedback-pair files)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="a new directory to write into")
        parser.add_argument("--image-size", type=int, default=32, help="image side in pixels (a multiple of 8)")
        parser.add_argument("--data-seed", type=int, default=0, help="synthfaces seed")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.run_dirs import prepare_run_dir
        from trainables.data import synthfaces
        from trainables.data.synthfaces_export import export

        try:
            spec = synthfaces.SynthFacesSpec(resolution=args.image_size, seed=args.data_seed)
        except ValueError as err:
            raise UserError(str(err)) from None
        faces = synthfaces.load(spec)
        new = prepare_run_dir(args.dir, what=str(args.dir), claim="train_dataset_infor.json")
        try:
            out = export(faces, new.path)
        except OSError as err:  # a full disk or a file system gone read-only under us: leave nothing half-made
            new.discard()
            raise UserError(f"{args.dir}: writing failed ({err.strerror or err}); nothing was left there") from None
        print(
            f"synthfaces (synthetic) written to {out}: train_dataset_infor.json, train_twin_pairs.json, "
            "test_dataset_infor.json, test_twin_pairs.json, feedback_pairs.json, feedback_test_pairs.json, images/"
        )
        return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


class GenerateData(Command):
    name, help = (
        "generate-data",
        "write real-shaped data: JPEG identity folders and a manifest, insightface .bin benchmarks, an "
        "LFW-style pair list, save_pretrained backbone folders (for tests, benchmarks and the tutorial)",
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from trainables.data.real_shaped import RealShapedSpec as S

        parser.add_argument("dir", type=Path, help="a new directory to write into")
        parser.add_argument("--identities", type=int, default=S.identities, help="training identities")
        parser.add_argument("--images", type=int, default=S.images, help="images per training identity")
        parser.add_argument(
            "--domains", default=",".join(S.domains), help="training domains, comma-separated (one: a flat folder)"
        )
        parser.add_argument("--size", type=int, default=S.size, help="image side in pixels (112: insightface's crops)")
        parser.add_argument(
            "--benchmarks", default=",".join(S.benchmarks), help=".bin benchmarks to write, e.g. lfw,cfp_fp"
        )
        parser.add_argument("--pairs", type=int, default=S.pairs, help="pairs per .bin, in 10 folds")
        parser.add_argument("--no-pair-list", action="store_true", help="leave out lfw_pairs/ (an LFW-style pairs.txt)")
        parser.add_argument(
            "--backbones",
            default="",
            help="save_pretrained folders to write, e.g. dinov2-vits14,clip-vitb16,dinov2-tiny",
        )
        parser.add_argument(
            "--tinyface-subjects",
            type=int,
            default=S.tinyface_subjects,
            help="subjects of a TinyFace-shaped folder TinyFace/ (probes, gallery, distractors; 0: none)",
        )
        parser.add_argument(
            "--ijb-subjects",
            type=int,
            default=S.ijb_subjects,
            help="subjects of an IJB-C-shaped folder IJBC/ (templates, 1:1 pairs, 1:N galleries; 0: none)",
        )
        parser.add_argument("--seed", type=int, default=0)

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.run_dirs import prepare_run_dir
        from trainables.data.real_shaped import RealShapedSpec, generate

        try:
            spec = RealShapedSpec(
                identities=args.identities,
                images=args.images,
                domains=_names(args.domains),
                size=args.size,
                benchmarks=_names(args.benchmarks),
                pairs=args.pairs,
                pair_list=not args.no_pair_list,
                backbones=_names(args.backbones),
                ijb_subjects=args.ijb_subjects,
                tinyface_subjects=args.tinyface_subjects,
                seed=args.seed,
            )
        except ValueError as err:
            raise UserError(str(err)) from None
        from orchestrator.spec import NAME_PATTERN

        bad = [b for b in spec.benchmarks if not re.fullmatch(NAME_PATTERN, b)]
        if bad:
            raise UserError(f"--benchmarks {bad[0]}: a benchmark name is letters, digits and _.+- (it names a file)")
        new = prepare_run_dir(args.dir, what=str(args.dir), claim="train.csv")
        try:
            generate(new.path, spec)
        except OSError as err:  # a full disk: leave nothing half-made
            new.discard()
            raise UserError(f"{args.dir}: writing failed ({err.strerror or err}); nothing was left there") from None
        print(f"real-shaped data (generated from synthfaces' renderer) written to {new.path}")
        return 0


class Cache(Command):
    name, help = "cache", "list or clear the decoded-image caches the trials share (ORCHESTRATOR_CACHE/images)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "action", choices=("list", "clear"), help="list: one line per cache; clear: remove them all"
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from trainables.data.image_cache import cache_root, clear_caches, list_caches

        if args.action == "clear":
            freed = clear_caches()
            print(f"cleared {cache_root()}: {freed / 2**20:.0f} MiB freed")
            return 0
        entries = list_caches()
        for e in entries:
            print(
                f"{e['directory']}\t{e['kind']}\t{e['rows']} images at {e['size']} px\t"
                f"{e['bytes'] / 2**20:.0f} MiB\tbuilt {e['built_at']}\t{e['source']}"
            )
        total = sum(e["bytes"] for e in entries)
        print(f"{len(entries)} caches in {cache_root()}, {total / 2**20:.0f} MiB")
        return 0


class Export(Command):
    name, help = "export", "write a trial's fine-tuned backbone (its best epoch, LoRA merged) in its own format"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", type=Path, help="the run directory")
        parser.add_argument("--trial", required=True, help="the trial's name (results.csv's trial_name)")
        parser.add_argument("--out", type=Path, required=True, help="a new or empty folder for the model")
        parser.add_argument("--adapter", action="store_true", help="also write the LoRA alone, as a peft adapter")
        parser.add_argument("--last", action="store_true", help="the last epoch's model, not the best epoch's")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.models import export_trial

        export_trial(args.dir, args.trial, args.out, adapter=args.adapter, last=args.last)
        return 0


class Embed(Command):
    name, help = "embed", "embed a folder of images with an exported model, as the evaluation does (flip test included)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model_dir", type=Path, help="a folder written by export (or any backbone folder)")
        parser.add_argument("images", type=Path, help="a folder of images (nested folders: the identities)")
        parser.add_argument("--out", type=Path, required=True, help="the .npz to write: embeddings, paths, identity")

    def take_action(self, args: argparse.Namespace) -> int:
        from orchestrator.models import embed

        embed(args.model_dir, args.images, args.out)
        return 0


class Align(Command):
    name, help = "align", "align raw photos to the 5-point template from their landmarks (CSV), into a new folder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "landmarks",
            type=Path,
            help="CSV: path (relative to IMAGES), left_eye_x, left_eye_y, right_eye_x, right_eye_y, nose_x, nose_y, "
            "mouth_left_x, mouth_left_y, mouth_right_x, mouth_right_y",
        )
        parser.add_argument("images", type=Path, help="the folder the CSV's paths are relative to")
        parser.add_argument("--out", type=Path, required=True, help="a new or empty folder for the aligned crops")
        parser.add_argument(
            "--size", type=int, default=112, help="crop side in pixels (112: ArcFace's template; 224 for a ViT-B)"
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from trainables.data.align import align_folder
        from trainables.errors import TrainableInputError

        try:
            align_folder(args.landmarks, args.images, args.out, size=args.size)
        except TrainableInputError as err:
            raise UserError(str(err)) from None
        return 0


COMMANDS: tuple[Command, ...] = (
    ListStudies(),
    Run(),
    Resume(),
    Extend(),
    Status(),
    Report(),
    Plan(),
    ExportSynthfaces(),
    GenerateData(),
    Cache(),
    Export(),
    Embed(),
    Align(),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage dump would be more than one line
        print(f"error: {one_line(message)} (see --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m orchestrator", description="Ray Tune orchestrator for face-recognition studies")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from reports.rundir.files import RunDirError  # the reports' input errors are RunDirErrors too

    try:
        return args.handler.take_action(args)
    except (UserError, RunDirError) as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except RunStopped as err:  # not the user's input: the run could not go on (exit 1, not 2)
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 1
    except OSError as err:
        if not is_disk_full(err):
            raise
        print(
            f"error: no space left on the device ({err.filename or 'writing a file'}); nothing written before was "
            f"touched: free some space and run the command again",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside Tune's own graceful stop
        print(
            "interrupted: what finished is in the run directory's results.csv; "
            "python -m orchestrator resume DIR continues the run",
            file=sys.stderr,
        )
        return 130
