import sys

from . import addersr_main, basicsr_main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(basicsr_main(args) if args[:1] in (["train"], ["test"]) else addersr_main(args))
