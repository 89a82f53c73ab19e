"""The model card (Markdown) logged with a registered model."""

from __future__ import annotations

from typing import Any

from flowsentinel.models.metrics import METRIC_NAMES


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(entry: dict[str, Any], context: dict[str, Any], others: list[dict[str, Any]]) -> str:
    """``entry``: the model's result; ``context``: data set, task, protocol, rows, features."""
    meta = entry["metadata"]
    lines = [
        f"# {context['registered_model']}: {entry['title']} ({entry['name']})",
        "",
        f"- **Data set / task**: {context['dataset']} / {context['task']} "
        f"(classes: {', '.join(meta['classes'])})",
        f"- **Sources**: {', '.join(context['sources'])}",
        f"- **Protocol**: `{context['protocol']}`: {context['protocol_description']}",
        f"- **Rows**: {context['n_train']:,} training, {context['n_test']:,} test",
        f"- **Feature set**: `{meta['feature_set']}` ({len(meta['features'])} input columns; a "
        "request must contain all of them)",
        f"- **Parameters**: `{entry['params']}`",
        f"- **Chosen by**: best test {context['metric']} among {len(others)} models",
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {m} | {_fmt(entry['metrics'].get(m))} |" for m in METRIC_NAMES],
        f"| fit seconds | {_fmt(entry['metrics']['fit_seconds'])} |",
        f"| predict seconds | {_fmt(entry['metrics']['predict_seconds'])} |",
        "",
        f"Confusion matrix (rows true, columns predicted; {', '.join(meta['classes'])}): "
        f"`{entry['confusion_matrix']}`",
        "",
        "## Compared with",
        "",
        "| model | f1 | roc_auc | fpr |",
        "|---|---|---|---|",
        *[
            f"| {o['name']} | {_fmt(o['metrics'].get('f1'))} | {_fmt(o['metrics'].get('roc_auc'))}"
            f" | {_fmt(o['metrics'].get('fpr'))} |"
            for o in others
        ],
        "",
        "## Plots (artefacts of the model's run)",
        "",
        "- `plots/confusion_matrix.png`, `plots/roc_pr.png`, `plots/feature_importance.png`",
        "",
        "## Caveats",
        "",
        "- Scores hold for flows computed as the training data were (CICFlowMeter features for "
        "CIC-IDS2017, Argus/Bro features for UNSW-NB15). Traffic from other networks differs.",
        "- The `seed` protocol reproduces a seed's figures and is not an honest estimate.",
    ]
    return "\n".join(lines) + "\n"
