"""``python -m addersr_plugin.train -opt FILE [...]``: ``basicsr train`` for launchers.

torchrun runs a module, not a console script:

    torchrun --nproc_per_node=2 -m addersr_plugin.train -opt FILE --launcher pytorch

uses gloo on CPU-only machines and NCCL on GPUs (see ``addersr_plugin.compat``).
"""

import sys

from .cli import basicsr_main

if __name__ == "__main__":
    sys.exit(basicsr_main(["train", *sys.argv[1:]]))
