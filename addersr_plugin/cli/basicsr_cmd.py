"""The ``basicsr`` console command (basicsr 1.4.2 on PyPI ships none).

    basicsr train -opt FILE [--auto_resume] [--debug] [--launcher none|pytorch|slurm] [--force_yml K=V ...]
    basicsr test  -opt FILE [--launcher ...] [--force_yml K=V ...]

The option file is checked first (``preflight``), then ``sys.argv`` is rewritten the way
basicsr's ``parse_options`` reads it and ``train_pipeline``/``test_pipeline`` run rooted at the
current directory, so ``experiments/``, ``results/`` and ``tb_logger/`` land where the user
is, not inside site-packages.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "basicsr"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-opt", "--opt", required=True, dest="opt", metavar="FILE", help="option YAML file")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                        help="job launcher; 'pytorch' under torchrun (gloo on CPU, NCCL on GPUs)")
    parser.add_argument("--force_yml", nargs="+", default=None, metavar="K=V",
                        help="override options, e.g. train:total_iter=1000 datasets:train:batch_size_per_gpu=8")
    parser.add_argument("--local_rank", type=int, default=0, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and test BasicSR models (with the AdderSR architectures of addersr-plugin). "
                    "Outputs go to experiments/, results/ and tb_logger/ under the current directory.",
        epilog="Examples:\n  basicsr train -opt options/train/AdderEDSR/train_AdderEDSR_x4.yml\n"
               "  basicsr train -opt options/train/AdderEDSR/train_AdderEDSR_x4.yml --auto_resume\n"
               "  basicsr test -opt options/test/AdderEDSR/test_AdderEDSR_x4.yml\n"
               "  torchrun --nproc_per_node=2 -m addersr_plugin.train -opt FILE --launcher pytorch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,test}", required=True)
    train = sub.add_parser("train", help="train a model from an option file")
    _add_common(train)
    train.add_argument("--auto_resume", action="store_true",
                       help="resume from the newest state in experiments/<name>/training_states")
    train.add_argument("--debug", action="store_true", help="debug mode: name prefixed debug_, frequent logs")
    test = sub.add_parser("test", help="evaluate a trained model (path.pretrain_network_g) on test sets")
    _add_common(test)
    return parser


def _basicsr_argv(args: argparse.Namespace) -> list[str]:
    argv = [f"{PROG} {args.command}", "-opt", args.opt, "--launcher", args.launcher]
    if getattr(args, "auto_resume", False):
        argv.append("--auto_resume")
    if getattr(args, "debug", False):
        argv.append("--debug")
    if args.force_yml:
        argv += ["--force_yml", *args.force_yml]
    return argv


def basicsr_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    is_train = args.command == "train"
    from ..data.errors import DatasetError
    from .addersr_cmd import load_plugin
    from .preflight import OptionError, preflight

    load_plugin()  # deferred by the console script until the arguments are parsed
    try:
        preflight(args.opt, args.force_yml, is_train)
    except (OptionError, DatasetError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    sys.argv = _basicsr_argv(args)
    if is_train:
        from basicsr.train import train_pipeline

        train_pipeline(os.getcwd())
    else:
        from basicsr.test import test_pipeline

        test_pipeline(os.getcwd())
    return 0
