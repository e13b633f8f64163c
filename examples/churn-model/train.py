"""Train a small customer-churn classifier and export it to ONNX.

The dataset is synthetic and generated with a fixed seed so that the example
is fully reproducible without downloading anything.

Dependencies (exact pins in ``requirements.txt`` next to this file):
    numpy, scikit-learn, skl2onnx, onnx

Usage (from the repository root or from this directory):
    python examples/churn-model/train.py

Outputs, written next to this script:
    model.onnx    input "features" float32 [None, 7];
                  outputs "label" int64 [None], "probabilities" float32 [None, 2]
    metrics.json  test-set auc, accuracy, precision, recall, f1
    tests/golden_inputs.json   the first GOLDEN_ROWS test-set rows, input name -> rows
    tests/golden_outputs.json  scikit-learn's predictions for them, output name -> values;
                               ``mloci test`` checks the ONNX export reproduces them
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SEED = 42
N_ROWS = 5000
TEST_FRACTION = 0.2
GOLDEN_ROWS = 32

# Column order is part of the model's contract: ONNX consumers only see a
# [N, 7] tensor, so this order is also recorded in the model metadata.
FEATURE_NAMES: tuple[str, ...] = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract_monthly",
    "has_fiber",
    "age",
)

# Upper bounds, pinned so the exported graph does not change when skl2onnx
# raises its default opset (it still picks the lowest version each operator
# needs); opset 17 is widely supported by ONNX runtimes.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def make_dataset(n_rows: int, seed: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Generate a synthetic churn dataset with a logistic ground truth."""
    rng = np.random.default_rng(seed)

    tenure = rng.integers(0, 73, size=n_rows).astype(np.float64)
    # New customers are more likely to be on month-to-month contracts, which
    # makes contract type and tenure correlated, as in real churn data.
    p_monthly = 1.0 / (1.0 + np.exp((tenure - 24.0) / 12.0))
    contract_monthly = (rng.random(n_rows) < p_monthly).astype(np.float64)
    has_fiber = (rng.random(n_rows) < 0.45).astype(np.float64)
    monthly = np.clip(30.0 + 45.0 * has_fiber + rng.normal(0.0, 12.0, size=n_rows), 18.0, 120.0)
    # Total charges drift from tenure * monthly because prices change over
    # time; the noise keeps the two features from being perfectly collinear.
    total = tenure * monthly * rng.normal(1.0, 0.05, size=n_rows)
    age = rng.integers(18, 81, size=n_rows).astype(np.float64)
    support_calls = rng.poisson(1.0 + 1.5 * has_fiber * contract_monthly).astype(np.float64)

    logit = (
        -1.2
        - 0.045 * tenure
        + 0.025 * (monthly - 65.0)
        + 0.45 * support_calls
        + 1.4 * contract_monthly
        + 0.4 * has_fiber
        - 0.015 * (age - 45.0)
    )
    churned = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    features = np.column_stack(
        [tenure, monthly, total, support_calls, contract_monthly, has_fiber, age]
    ).astype(np.float32)
    return features, churned


def build_model() -> Pipeline:
    """Scaled logistic regression: converts to ONNX exactly and stays tiny."""
    return Pipeline(
        [
            ("scaler", StandardScaler()),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )


def evaluate(model: Pipeline, x_test: NDArray[np.float32], y_test: NDArray[np.int64]) -> dict[str, float]:
    """Compute test-set metrics rounded so metrics.json diffs stay readable."""
    proba = model.predict_proba(x_test)[:, 1]
    pred = model.predict(x_test)
    metrics = {
        "auc": roc_auc_score(y_test, proba),
        "accuracy": accuracy_score(y_test, pred),
        "precision": precision_score(y_test, pred),
        "recall": recall_score(y_test, pred),
        "f1": f1_score(y_test, pred),
    }
    return {name: round(float(value), 4) for name, value in metrics.items()}


def export_onnx(model: Pipeline) -> onnx.ModelProto:
    """Convert to ONNX with plain tensor outputs instead of a ZipMap."""
    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=TARGET_OPSET,
        # ZipMap yields a sequence of dicts, which many runtimes and tensor
        # based serving stacks cannot consume; a [N, 2] tensor is portable.
        options={LogisticRegression: {"zipmap": False}},
    )
    # to_onnx is typed as returning several proto kinds; narrow it explicitly.
    if not isinstance(onx, onnx.ModelProto):
        raise TypeError(f"expected onnx.ModelProto, got {type(onx).__name__}")
    # skl2onnx 1.20 lists the default domain twice in opset_import; keep one
    # entry per domain so stricter loaders do not reject the model.
    opsets = {opset.domain: opset.version for opset in onx.opset_import}
    del onx.opset_import[:]
    for domain, version in sorted(opsets.items()):
        onx.opset_import.append(onnx.helper.make_opsetid(domain, version))
    onnx.helper.set_model_props(onx, {"feature_names": ",".join(FEATURE_NAMES)})
    onnx.checker.check_model(onx, full_check=True)
    return onx


def golden_files(model: Pipeline, x_test: NDArray[np.float32]) -> tuple[str, str]:
    """Inputs and the reference implementation's outputs, as JSON, for ``mloci test``'s golden test."""
    rows = x_test[:GOLDEN_ROWS]
    # str() of a float32 is its shortest round-tripping decimal: the JSON reads back bit-exact.
    inputs = {"features": [[float(str(value)) for value in row] for row in rows]}
    outputs = {
        "label": [int(label) for label in model.predict(rows)],
        "probabilities": [[float(p) for p in row] for row in model.predict_proba(rows)],
    }
    return json.dumps(inputs) + "\n", json.dumps(outputs) + "\n"


def main() -> None:
    features, labels = make_dataset(N_ROWS, SEED)
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        labels,
        test_size=TEST_FRACTION,
        random_state=SEED,
        # Stratifying keeps the churn rate identical in both splits, so the
        # metrics do not depend on an unlucky draw.
        stratify=labels,
    )

    model = build_model()
    model.fit(x_train, y_train)
    metrics = evaluate(model, x_test, y_test)

    onx = export_onnx(model)
    # Deterministic serialisation keeps model.onnx byte-identical across
    # runs, so its digest only changes when the model really changes.
    (HERE / "model.onnx").write_bytes(onx.SerializeToString(deterministic=True))
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    golden_inputs, golden_outputs = golden_files(model, x_test)
    (HERE / "tests").mkdir(exist_ok=True)
    (HERE / "tests" / "golden_inputs.json").write_text(golden_inputs, encoding="utf-8")
    (HERE / "tests" / "golden_outputs.json").write_text(golden_outputs, encoding="utf-8")
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
