"""`farm image build|check`: build the base image of libvirt workers, or boot it and run a test."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from farm.errors import FarmError, UsageError
from farm.submit_options import suite_env
from farm.suite_env import EDITABLE
from workers.image import DEFAULT_DIR, Image, build
from workers.image_check import check_image
from workers.remote_env import check_bakeable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="farm image", description="Build or check the base image of libvirt workers.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (reused when its inputs did not change)")
    b.add_argument("--output", type=Path, default=DEFAULT_DIR)
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.add_argument("--requirements", type=Path, action="append", default=[], metavar="FILE",
                   help="bake a suite environment with these requirements into the image (repeatable)")
    b.add_argument("--install", action="append", default=[], metavar="SPEC",
                   help="a package to bake into that environment too (repeatable)")
    c = sub.add_parser("check", help="boot the image and run a test in it")
    c.add_argument("image", type=Path)
    c.add_argument("--libvirt-uri", default="qemu:///system")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "build":
            envs = (suite_env(tuple(args.requirements), tuple(args.install), EDITABLE),) \
                if args.requirements or args.install else ()
            for env in envs:
                try:
                    check_bakeable(env)
                except FarmError as exc:
                    raise UsageError(str(exc)) from None
            build(args.output, force=args.force, envs=envs)
            return 0
        seconds = check_image(Image.load(args.image), args.libvirt_uri)
        print(f"image {args.image}: booted and ran a test in {seconds:.1f}s")
        return 0
    except FarmError as exc:
        print(f"farm image: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
