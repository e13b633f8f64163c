"""An "Examples" section for every command's --help, kept in one place so none is forgotten.

A test walks the whole command tree and fails on a command without one.
"""

from __future__ import annotations

import click

R = "registry.example.com/ml/churn-model"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "init": ("mloci init ./churn-model --version 1.0.0",),
    "validate": ("mloci validate ./churn-model", "mloci validate ./churn-model --json"),
    "push": (
        "mloci push ./churn-model                # local store, or $MLOCI_REGISTRY",
        f"mloci push ./churn-model {R}",
        f"mloci push ./churn-model {R} -t latest --json",
        f"mloci push ./tokenizer-model {R} --pack vocab=tar --pack shards=raw",
    ),
    "export": (
        f"mloci export {R}:1.5.0 --with-referrers -o churn-model-1.5.0.tar",
        "mloci export churn-model:1.5.0 other-model:2.0.0 --compress -o models.tar.gz",
    ),
    "import": (
        "mloci import churn-model-1.5.0.tar registry.internal:5000/ml",
        "mloci import churn-model-1.5.0.tar          # into the local store",
        "mloci inspect oci-archive:churn-model-1.5.0.tar:1.5.0   # or read it in place",
    ),
    "pull": (
        f"mloci pull {R}:1.0.0 -o ./model",
        f"mloci pull {R}@sha256:<digest> -o /models --digest-file /models/DIGEST",
        f"mloci pull {R}:1.0.0 --filter weight -o ./weights",
        f"mloci pull {R}:1.0.0 -o ./model --connections 8   # large blobs in parallel ranges",
        "mloci pull oci-archive:churn-model-1.5.0.tar:1.5.0 -o ./model",
    ),
    "inspect": (f"mloci inspect {R}:1.0.0", "mloci inspect churn-model:1.0.0 --json"),
    "login": ('echo "$TOKEN" | mloci login registry.example.com -u ci --password-stdin',),
    "logout": ("mloci logout registry.example.com",),
    "doctor": ("mloci doctor registry.example.com", "mloci doctor localhost:5000 --json"),
    "tag": (f"mloci tag {R}:1.0.0 latest", f"mloci tag {R}@sha256:<digest> candidate"),
    "promote": (
        f"mloci promote {R}:1.0.0 --to staging --reason 'passed offline eval'",
        f"mloci promote {R}:1.0.0 --to prod --policy policy.yaml",
    ),
    "history": (f"mloci history {R}", f"mloci history {R} --env prod --json"),
    "rollback": (f"mloci rollback {R} --env prod --reason 'latency regression'",),
    "copy": (
        f"mloci copy {R}:1.0.0 mirror.example.com/ml/churn-model --with-referrers",
        f"mloci copy {R}:1.0.0 airgap/churn-model:1.0.0   # into the local store",
    ),
    "ls": (f"mloci ls {R}", "mloci ls churn-model --json"),
    "diff": (f"mloci diff {R}:1.0.0 {R}:1.1.0",),
    "gc": (f"mloci gc {R} --keep-last 5 --dry-run", f"mloci gc {R} --keep-last 5"),
    "policy": ("mloci policy check REF --policy policy.yaml",),
    "policy check": (f"mloci policy check {R}:1.0.0 --policy policy.yaml",),
    "image": ("mloci image build ./churn-model --repo REGISTRY/ml/churn-serve",),
    "image build": (
        "mloci image build ./churn-model --repo registry.example.com/ml/churn-serve "
        "--app ./serve --cmd 'python serve.py' --port 8080",
    ),
    "keygen": (
        "MLOCI_KEY_PASSWORD=… mloci keygen --output-key-prefix release",
        "MLOCI_KEY_PASSWORD=… mloci keygen --output-key-prefix release --algorithm ed25519",
    ),
    "sign": (
        f"mloci sign {R}:1.0.0 --key release.key -a build=1234   # sigstore bundle, as cosign v3",
        f"mloci sign {R}:1.0.0 --key release.key --format both   # and cosign v2's .sig",
        "mloci sign ghcr.io/org/model:1.2.0 --keyless             # in CI, with id-token: write",
        "mloci sign ./churn-model --model-signing --key release.key   # writes ./churn-model/model.sig",
    ),
    "verify": (
        f"mloci verify {R}:1.0.0 --key release.pub",
        "mloci verify ghcr.io/org/model:1.2.0 --certificate-identity "
        "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.2.0 "
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "mloci verify ./churn-model --model-signing --key release.pub",
    ),
    "verify-bundle": (
        "mloci verify-bundle sig.sigstore.json --digest sha256:<digest> --key cosign.pub",
        "mloci verify-bundle blob.sigstore.json --artifact model.onnx --certificate-identity-regexp "
        "'https://github.com/org/.*' --certificate-oidc-issuer https://token.actions.githubusercontent.com "
        "--trusted-root trusted_root.json",
    ),
    "wheel": ("mloci wheel push dist/* registry.example.com/py",),
    "wheel push": (
        "mloci wheel push dist/* registry.example.com/py",
        "mloci wheel push dist/* registry.example.com/py --git-tag   # and tag HEAD mypkg-v1.2.0",
    ),
    "wheel pull": (
        "mloci wheel pull registry.example.com/py/mypkg==1.2.0 -o ./wheelhouse",
        "mloci wheel pull registry.example.com/py/mypkg --filter '*.whl'",
    ),
    "wheel yank": ("mloci wheel yank registry.example.com/py/mypkg==1.2.0 --reason 'broken build'",),
    "index": ("mloci index serve --registry registry.example.com --namespace py",),
    "index serve": (
        "mloci index serve --registry registry.example.com --namespace py --port 8080",
        "mloci index serve --registry registry.example.com --namespace py --upstream https://pypi.org/simple/",
        "pip install --index-url http://127.0.0.1:8080/simple/ mypkg",
    ),
    "serve": (
        "mloci serve                                    # the local store -> http://127.0.0.1:8080/",
        "mloci serve --registry registry.example.com --namespace ml --port 0",
        "mloci serve --registry registry.example.com --namespace ml --config mloci.toml --verify-key cosign.pub",
        "mloci serve --registry registry.example.com --namespace ml --require-auth --policy prod=prod.yaml",
        "curl 'http://127.0.0.1:8080/api/v1/models?q=auc>0.9'",
    ),
    "index reserve": ("mloci index reserve registry.example.com/py mypkg mypkg-internal",),
    "sbom": ("mloci sbom ./churn-model -o sbom.cdx.json", f"mloci sbom {R}:1.0.0 --attach"),
    "attest": (
        f"mloci attest {R}:1.0.0 --key release.key",
        f"mloci attest {R}:1.0.0 --key release.key --format both   # and the bare DSSE envelope",
    ),
    "verify-attestation": (
        f"mloci verify-attestation {R}:1.0.0 --key release.pub",
        "mloci verify-attestation ghcr.io/org/model:1.2.0 --type any --certificate-identity-regexp "
        "'https://github.com/org/.*' --certificate-oidc-issuer https://token.actions.githubusercontent.com",
    ),
    "attach": (
        f"mloci attach {R}:1.0.0 eval-report.html --artifact-type application/vnd.example.eval-report",
    ),
    "discover": (f"mloci discover {R}:1.0.0", f"mloci discover {R}:1.0.0 --json"),
}


def add_examples(command: click.Command, path: str) -> click.Command:
    """Give ``command`` (and a group's subcommands) its Examples epilog, once."""
    lines = EXAMPLES.get(path)
    if lines and not (command.epilog or "").startswith("Examples:"):
        body = "\n".join(f"  $ {line}" for line in lines)
        # \b keeps click from re-wrapping the lines: they must stay copy-pasteable.
        command.epilog = f"Examples:\n\n\b\n{body}" + (f"\n\n{command.epilog}" if command.epilog else "")
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}")
    return command
