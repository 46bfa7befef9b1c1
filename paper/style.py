"""One figure style for the whole paper, and reproducible saving of figures.

Every figure uses seaborn's ``colorblind`` palette (Wong/Okabe-Ito-like, safe for the common forms
of colour blindness), the same font sizes and the same saving routine. Saving is byte-reproducible:
matplotlib's SVG ids come from a fixed hash salt and no creation date is written into SVG or PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window (also on machines without a display)

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["FIGURE_FORMATS", "PALETTE_NAME", "apply_style", "palette_for", "save_figure"]

PALETTE_NAME = "colorblind"  # seaborn's colour-blind-safe qualitative palette (10 colours)
FIGURE_FORMATS = ("png", "svg")  # raster for quick viewing, vector for the paper
_PNG_DPI = 150  # enough for a screen and a draft PDF, small enough for fast tests
_SVG_HASHSALT = "paper"  # fixed salt: SVG element ids are the same on every build


def apply_style() -> None:
    """Set the paper's seaborn theme and the reproducibility settings of matplotlib.

    Idempotent; call it before drawing any figure.

    Example:
        >>> apply_style()
        >>> import matplotlib
        >>> matplotlib.rcParams["svg.hashsalt"]
        'paper'
    """
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE_NAME, font_scale=1.1)
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": _SVG_HASHSALT,
            "svg.fonttype": "none",  # text stays text (smaller, searchable, no glyph paths)
            "figure.dpi": 100,
            "axes.titlesize": "medium",
            "legend.frameon": False,
        }
    )


def palette_for(levels: list[str]) -> dict[str, tuple[float, float, float]]:
    """Map category levels to colours of the colour-blind-safe palette, in the given order.

    Args:
        levels: the category values, in the order they should take colours.

    Returns:
        ``{level: rgb}``; colours repeat after 10 levels.

    Example:
        >>> len(palette_for(["a", "b"]))
        2
    """
    colours = sns.color_palette(PALETTE_NAME, n_colors=max(len(levels), 1))
    return {level: colours[i % len(colours)] for i, level in enumerate(levels)}


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Save ``fig`` as PNG and SVG under ``out_dir`` without any date or other varying metadata.

    The figure is closed afterwards.

    Args:
        fig: the figure to save.
        out_dir: folder for the files; created when missing.
        name: file stem, e.g. ``"throughput"``.

    Returns:
        The written paths, in :data:`FIGURE_FORMATS` order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FIGURE_FORMATS:
        path = out_dir / f"{name}.{fmt}"
        # Date=None drops the creation date; the rest of the metadata is the fixed version string.
        metadata = {"Date": None} if fmt == "svg" else {}
        fig.savefig(path, format=fmt, dpi=_PNG_DPI, metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths
