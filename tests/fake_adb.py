#!/usr/bin/env python3
"""A stand-in for `adb` in tests: one connected device whose file system is a local folder.

    fake_adb.py -s SERIAL push LOCAL REMOTE | pull REMOTE LOCAL | shell COMMAND

Environment: FAKE_ADB_ROOT, the folder holding the device's files (remote /data/local/tmp/x is
FAKE_ADB_ROOT/data/local/tmp/x); FAKE_ADB_SERIAL, the connected device's serial; optionally
FAKE_ADB_RUN_PREFIX, e.g. "qemu-aarch64-static": programs a shell command starts as ./NAME run
through it (an emulated aarch64 device). Shell commands run with `sh -c` in the root folder, with
/data/local/tmp in them mapped to the folder. Messages and exit statuses follow adb's (a missing
device or file: exit 1 and adb's wording on stderr; shell: the command's status, as adb >= 7).
"""
import os
import re
import shutil
import subprocess
import sys

DEVICE_PREFIX = "/data/local/tmp"


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def local_path(root: str, remote: str) -> str:
    if not remote.startswith(DEVICE_PREFIX + "/"):
        fail(f"adb: error: fake device: only {DEVICE_PREFIX}/... is writable, got '{remote}'")
    return os.path.join(root, remote.lstrip("/"))


def main(argv: list[str]) -> None:
    root = os.environ["FAKE_ADB_ROOT"]
    if len(argv) < 3 or argv[0] != "-s":
        fail("adb: usage: fake_adb.py -s SERIAL push|pull|shell ...")
    serial, command, args = argv[1], argv[2], argv[3:]
    if serial != os.environ["FAKE_ADB_SERIAL"]:
        fail(f"adb: device '{serial}' not found")
    if command == "push" and len(args) == 2:
        source, target = args[0], local_path(root, args[1])
        if not os.path.isfile(source):
            fail(f"adb: error: cannot stat '{source}': No such file or directory")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)  # like adb to /data/local/tmp: the mode is not kept
        print(f"{source}: 1 file pushed.")
    elif command == "pull" and len(args) == 2:
        source = local_path(root, args[0])
        if not os.path.isfile(source):
            fail(f"adb: error: failed to stat remote object '{args[0]}': No such file or directory")
        shutil.copyfile(source, args[1])
        print(f"{args[0]}: 1 file pulled.")
    elif command == "shell" and len(args) >= 1:
        script = " ".join(args).replace(DEVICE_PREFIX, os.path.join(root, DEVICE_PREFIX.lstrip("/")))
        prefix = os.environ.get("FAKE_ADB_RUN_PREFIX")
        if prefix:
            script = re.sub(r"(^|[;&|]\s*)\./", lambda m: f"{m.group(1)}{prefix} ./", script)
        sys.exit(subprocess.run(["sh", "-c", script], cwd=root).returncode)
    else:
        fail(f"adb: fake device: unsupported command {argv[2:]}")


if __name__ == "__main__":
    main(sys.argv[1:])
