"""Whether a scan can feed an atlas: made with this very model (same weights) and holding its layers."""

from __future__ import annotations

from collections.abc import Sequence

from convscope.models.model import Model
from convscope.scan import storage
from convscope.scan.result import ScanResult


def check_scan(result: ScanResult, model: Model, layers: Sequence[str], digest: str | None = None) -> None:
    """A one-line ``ValueError`` when the scan was made with another model or lacks one of ``layers``.

    ``digest``: the model's :func:`~convscope.scan.storage.fingerprint` when already known.
    """
    scanned = result.config.get("model", {})
    digest = digest if digest is not None else storage.fingerprint(model.net)
    if scanned.get("fingerprint") != digest:
        what = "other weights" if scanned.get("name") == model.name else f"{scanned.get('name')!r}"
        raise ValueError(f"the scan in {str(result.folder)!r} was made with {what}, not this {model.name!r}: scan "
                         f"with this model first (`convscope scan … --model {model.name} --layers "
                         f"{' '.join(layers)}`), or give the scanned model's --model and --weights")
    missing = [layer for layer in layers if layer not in result.layers]
    if missing:
        raise ValueError(f"the scan in {str(result.folder)!r} recorded {', '.join(result.layers)}, not "
                         f"{', '.join(missing)}: scan those layers too (`convscope scan … --layers "
                         f"{' '.join(dict.fromkeys([*result.layers, *layers]))}`) or choose among the scanned ones")
