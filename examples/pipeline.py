"""A training pipeline with mloci's Python API: train → bundle → push → sign → attach SBOM → promote.

Usage:
    python examples/pipeline.py --repository registry.example.com/ml/churn-model --key cosign.key \
        [--to staging] [--workdir build/]

Training needs scikit-learn, skl2onnx and onnx (examples/churn-model/requirements.txt); without them
the step reuses the model shipped with the example, so the rest of the pipeline runs anywhere.
The signing key's passphrase comes from $MLOCI_KEY_PASSWORD.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mloci

EXAMPLE = Path(__file__).resolve().parent / "churn-model"


def train(workdir: Path) -> Path:
    """Write a complete bundle (model, metrics, manifest) into ``workdir/churn-model``."""
    bundle = workdir / "churn-model"
    if bundle.exists():
        shutil.rmtree(bundle)
    shutil.copytree(EXAMPLE, bundle)
    if all(importlib.util.find_spec(m) for m in ("sklearn", "skl2onnx", "onnx")):
        subprocess.run([sys.executable, str(bundle / "train.py")], check=True, cwd=bundle)
    else:
        print("scikit-learn/skl2onnx not installed: reusing the example's trained model", file=sys.stderr)
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repository", required=True, help="where to push, e.g. registry.example.com/ml/churn"
    )
    parser.add_argument(
        "--key", required=True, type=Path, help="cosign-compatible private key (mloci keygen)"
    )
    parser.add_argument("--to", default="staging", help="environment to promote into")
    parser.add_argument("--workdir", type=Path, default=Path("build"), help="where the bundle is written")
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    bundle = train(args.workdir)
    report = mloci.validate(bundle)
    if not report.valid:
        for problem in report.problems:
            print(f"invalid bundle: {problem}", file=sys.stderr)
        return 3
    try:
        with mloci.Client() as client:
            pushed = client.push(bundle, args.repository)
            signed = client.sign(pushed.reference, key=args.key)
            sbom = client.sbom(pushed.reference, attach=True)
            promoted = client.promote(
                pushed.reference, to=args.to, reason="pipeline: trained, signed, SBOM attached"
            )
    except mloci.MlociError as err:
        print(f"pipeline failed: {err}", file=sys.stderr)
        return err.exit_code
    summary = {
        "reference": str(pushed.reference),
        "digest": str(pushed.digest),
        "signed": str(signed.digest),
        "sbomComponents": sbom.components,
        "environment": args.to,
        "alias": str(promoted.reference),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
