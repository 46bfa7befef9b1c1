"""Resolve SparseZoo models (the pruned models of the original study) to an ONNX file and a recipe.

A stub is resolved with ``sparsezoo.Model(stub)``, which needs ``api.neuralmagic.com``. Before
calling it, :func:`resolve` checks with one short TCP connection that the API host is reachable
and raises :class:`ZooUnavailableError` at once when it is not, instead of waiting on retries.
A local folder in SparseZoo's layout (``model.onnx`` or ``deployment/model.onnx``, and
``recipe.yaml``, ``recipe.md`` or a ``recipe/`` folder) is accepted in place of a stub, for
machines that were given the files by hand.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__ = ["ZOO_STUBS", "ZooModel", "ZooUnavailableError", "resolve"]

# The pruned ImageNet models of the original study, by architecture (SparseZoo v1 stubs).
ZOO_STUBS: dict[str, str] = {
    "resnet50": "zoo:cv/classification/resnet_v1-50/pytorch/sparseml/imagenet/pruned95-none",
    "mobilenetv1": "zoo:cv/classification/mobilenet_v1-1.0/pytorch/sparseml/imagenet/pruned-moderate",
    "vgg19": "zoo:cv/classification/vgg-19/pytorch/sparseml/imagenet/pruned-moderate",
    "inception_v3": "zoo:cv/classification/inception_v3/pytorch/sparseml/imagenet/pruned-moderate",
}


class ZooUnavailableError(RuntimeError):
    """SparseZoo cannot be reached (no network) or does not serve the requested stub."""


@dataclass(frozen=True)
class ZooModel:
    """A SparseZoo model resolved to local files."""

    # The ONNX file.
    onnx_path: Path
    # The recipe it was pruned with (a .md or .yaml file), or None when the model has none.
    recipe_path: Path | None
    # The stub (or local folder) it came from.
    stub: str


def _api_host() -> tuple[str, int]:
    from sparsezoo.utils import BASE_API_URL

    url = urlparse(BASE_API_URL)
    return url.hostname or "api.neuralmagic.com", url.port or (443 if url.scheme == "https" else 80)


def _check_reachable(stub: str, timeout: float) -> None:
    host, port = _api_host()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise ZooUnavailableError(
            f"cannot resolve SparseZoo stub {stub!r}: no network reaches {host}:{port} ({err}). "
            "Pass a local folder holding model.onnx and recipe.yaml/recipe.md instead."
        ) from err


def _find_recipe(folder: Path) -> Path | None:
    for candidate in ("recipe.yaml", "recipe.md"):
        if (folder / candidate).is_file():
            return folder / candidate
    recipe_dir = folder / "recipe"
    if recipe_dir.is_dir():
        files = sorted(p for p in recipe_dir.iterdir() if p.suffix in (".md", ".yaml", ".yml"))
        preferred = [p for p in files if p.stem.startswith("recipe_original")]
        return (preferred or files or [None])[0]
    return None


def _from_folder(folder: Path) -> ZooModel:
    for candidate in (folder / "model.onnx", folder / "deployment" / "model.onnx"):
        if candidate.is_file():
            return ZooModel(candidate, _find_recipe(folder), str(folder))
    raise FileNotFoundError(
        f"SparseZoo folder {str(folder)!r} holds no model.onnx (looked in the folder and deployment/)"
    )


def resolve(stub: str | Path, timeout: float = 3.0) -> ZooModel:
    """Download (or find in SparseZoo's cache) a model's ONNX file and recipe.

    Args:
        stub: A ``zoo:`` stub (see :data:`ZOO_STUBS`), a key of :data:`ZOO_STUBS`, or a local
            folder in SparseZoo's layout.
        timeout: Seconds to wait for the network check.

    Returns:
        A :class:`ZooModel` with local paths.

    Raises:
        ZooUnavailableError: If the SparseZoo API cannot be reached or the download fails.
        FileNotFoundError: If a local folder holds no ``model.onnx``.
        ValueError: If ``stub`` is neither a stub, a known name nor an existing folder.

    Example:
        >>> resolve("resnet50").onnx_path  # doctest: +SKIP
        PosixPath('/root/.cache/sparsezoo/.../model.onnx')
    """
    text = ZOO_STUBS.get(str(stub), str(stub))
    if Path(text).is_dir():
        return _from_folder(Path(text))
    if not text.startswith("zoo:"):
        raise ValueError(
            f"`stub` must be a 'zoo:' stub, one of {sorted(ZOO_STUBS)}, or an existing folder; got {text!r}"
        )
    _check_reachable(text, timeout)
    import requests
    from sparsezoo import Model

    try:
        model = Model(text)
        onnx_path = Path(model.onnx_model.path)
        recipe_path = Path(model.recipes.default.path) if model.recipes.available else None
    except (requests.RequestException, OSError) as err:
        raise ZooUnavailableError(f"cannot download SparseZoo stub {text!r}: {err}") from err
    return ZooModel(onnx_path, recipe_path, text)
