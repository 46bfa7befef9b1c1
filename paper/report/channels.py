"""The report's lead: the A/A control, then B per channel and engine pair, in tables and words.

Sentences are :func:`study.analysis.markdown.channel_sentence`'s, so the paper and summary.md say the
same thing with the same numbers.
"""

from __future__ import annotations

from paper.analysis import RANDOM_EFFECTS_MIN_K, Analysis
from paper.figures import FigureResult
from paper.tables import Table, to_markdown
from paper.tables.channels import context_columns, pair
from study.analysis.markdown import apart_bullets, channel_sentence
from study.design import CHANNEL_TEXT

__all__ = [
    "TOOLCHAIN_CHANNELS",
    "aa_section",
    "channels_section",
    "pooled_results",
    "sentence_bullets",
]

# Channels that ask whether a toolchain's choice biases the comparison ("precision" is the int8
# speed-up of one toolchain, not a choice between toolchains).
TOOLCHAIN_CHANNELS = ("pruner", "exporter", "profile:uniform", "profile:vendor", "mask:block4")
TOOLCHAIN_CHANNELS += ("quantizer", "quantizer:nncf")


def pooled_results(analysis: Analysis, channel: str | None = None) -> list:
    """The pooled ChannelResults (of one channel, when given), in the analysis' order."""
    return [
        r
        for r in analysis.channels
        if r.model == "pooled" and (channel is None or r.channel == channel)
    ]


def sentence_bullets(results: list, identical: bool = False, one_file: bool = True) -> list[str]:
    """One Markdown bullet per result: ``channel_sentence``, prefixed by the context that varies."""
    columns = context_columns(results)
    out = []
    for r in results:
        where = " · ".join(str(getattr(r, c)) for c in columns)
        said = channel_sentence(r, identical=identical, one_file=one_file)
        out.append(f"- {where + ': ' if where else ''}{said}")
    return out


def aa_section(analysis: Analysis) -> list[str]:
    """The A/A control: are gmp's and SparseML's files identical, and what B did one file give?"""
    lines = ["### The A/A control: gmp vs SparseML, the same algorithm", ""]
    pooled = pooled_results(analysis, "pruner")
    if not pooled:
        why = analysis.reasons.get("channels", "the pruner factor is not in this run")
        return lines + [f"Not measured: {why}.", ""]
    same = [m for m, v in sorted(analysis.identity.items()) if v]
    differ = [m for m, v in sorted(analysis.identity.items()) if not v]
    identical = bool(same) and not differ
    one = identical and all(analysis.one_file.get(m) for m in same)
    if identical:
        text = (
            "**Identical models: the pruning implementation cannot bias the engines.** On every "
            f"architecture ({', '.join(same)}) gmp and SparseML gave content-identical ONNX graphs "
            "(order-free hash of nodes and initializers, values compared as numbers)."
        )
        zeros = {m: n for m, n in sorted(analysis.signed_zeros.items()) if n}
        if zeros:
            listed = ", ".join(f"{n:,} on {m}" for m, n in zeros.items())
            text += (
                f" Their bytes differ only in the sign bit of zero weights ({listed}: -0.0 in one "
                "file where the other has 0.0), so both files were measured, each in its own cell, "
                "in the same rounds: the B between them is an A/A control up to the sign of zero "
                "(it would show an engine that treats -0.0 differently)."
            )
        else:
            text += " The one file was measured in two cells, in the same rounds."
        text += (
            " Its CI and minimum detectable effect (MDE) are the study's detection limit, the "
            "smallest bias any channel below could have shown:"
        )
    elif not analysis.identity:
        text = (
            "The manifest does not say whether gmp's and SparseML's files are identical (no "
            "models/manifest.jsonl, or no SparseML-pruned reference in it); the pruner B is "
            "reported as a channel like the others:"
        )
    else:
        text = (
            f"gmp and SparseML gave identical graphs on {', '.join(same) or 'no architecture'} "
            f"and different ones on {', '.join(differ)}: there the pruner is a channel like the "
            "others, and the pooled B mixes both:"
        )
    return lines + [text, ""] + sentence_bullets(pooled, identical, one) + [""]


def _explanation(analysis: Analysis) -> str:
    m = f"{analysis.margin:.0%}"
    alpha = 1 - analysis.confidence
    return (
        "B = (engine N / engine D throughput on the variant) / (the same ratio on the reference: "
        "gmp, one global magnitude threshold, unstructured, fp32, torch.onnx). B = 1: the choice does not change the "
        "comparison; B > 1 favours N. Each B pairs trials measured in the same round (common "
        "drift cancels) and is pooled over architectures (equal-weight pool below "
        f"{RANDOM_EFFECTS_MIN_K} architectures, random effects from {RANDOM_EFFECTS_MIN_K}). "
        f"Declared margin ±{m}: TOST inside it means 'no bias larger than {m}'; p(B ≥ "
        f"{1 + analysis.margin:g}) < {alpha:.2g} means the channel cannot explain a gap of {m} "
        "or more in N's favour (the original study's DeepSparse-over-OpenVINO gap was 12%). MDE: "
        "the smallest |B - 1| detectable at 80% power. Holm p: across every pooled B of the table."
    )


def _gap_claims(analysis: Analysis) -> list[str]:
    """Per engine pair: can any toolchain channel explain a gap of the margin in N's favour?"""
    m = f"{analysis.margin:.0%}"
    rows = [r for r in pooled_results(analysis) if r.channel in TOOLCHAIN_CHANNELS]
    out = []
    for name in dict.fromkeys(pair(r) for r in rows):
        mine = [r for r in rows if pair(r) == name]
        ruled = [r.channel for r in mine if r.gap_ruled_out]
        open_ = [r.channel for r in mine if not r.gap_ruled_out]
        num = mine[0].numerator
        if not open_:
            out.append(
                f"- {name}: no toolchain channel can explain a gap of {m} or more in favour of "
                f"{num} (every one-sided test rejects B ≥ {1 + analysis.margin:g}: an "
                f"intersection-union test at level {1 - analysis.confidence:.2g}, no adjustment "
                f"needed); channels: {', '.join(ruled)}."
            )
        else:
            out.append(
                f"- {name}: a gap of {m} or more in favour of {num} is ruled out for "
                f"{len(ruled)} of {len(mine)} toolchain channels; not ruled out for "
                f"{', '.join(open_)}."
            )
    return out


def channels_section(
    analysis: Analysis,
    pooled: Table | None,
    by_architecture: Table | None,
    forest: FigureResult | None,
) -> list[str]:
    """B per channel: the central figure, the pooled table, a sentence per channel, per architecture."""
    lines = ["### Does a vendor toolchain's choice change the engine comparison?", ""]
    if not analysis.channels:
        return lines + [f"Cannot answer: {analysis.reasons.get('channels', 'no channel')}.", ""]
    lines += [_explanation(analysis), ""]
    if forest is not None and not forest.skipped:
        lines += [f"![{forest.title}](figures/{forest.name}.png)", ""]
        lines += [f"*{forest.title}* ([SVG](figures/{forest.name}.svg))", ""]
    if pooled is not None:
        lines += [f"**{pooled.caption}**", "", to_markdown(pooled)]
    for name in dict.fromkeys(r.channel for r in analysis.channels):
        if name == "pruner":
            continue
        lines += [f"**{name}**: {CHANNEL_TEXT.get(name, name)}.", ""]
        lines += sentence_bullets(pooled_results(analysis, name))
        lines += apart_bullets(analysis.apart.get(name, {})) + [""]
    claims = _gap_claims(analysis)
    if claims:
        lines += ["Could a toolchain channel explain the engine gap?", ""] + claims + [""]
    if by_architecture is not None:
        lines += [f"**{by_architecture.caption}**", "", to_markdown(by_architecture)]
    return lines
