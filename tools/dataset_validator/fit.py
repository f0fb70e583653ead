"""Whether the validated data fits the template that will train on it.

Each method trains the formats configs/datasets.yaml `formats.method_formats` lists for it: the
datasets must all be trained by one method, and by the template's. KTO weighs its desirable
examples against its undesirable ones: the weighted ratio of the two should lie in
warnings.kto_weighted_ratio, and data of one label only gives it nothing to contrast.

Everything here reads the reports alone, so a template applied after the data was validated is
judged at once, without reading the files again.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tools.dataset_validator.config import DatasetsConfig, RatioBand
from tools.dataset_validator.kinds import ErrorCode, WarningCode
from tools.dataset_validator.results import FIXES, DatasetReport
from tools.issues import Issue

CONVERT_TARGET = "sft"
"""The method whose data validate_datasets can make of preference data (convert: "sft")."""

JUDGED = frozenset(
    {ErrorCode.FORMAT_VS_METHOD, ErrorCode.MIXED_FORMAT, ErrorCode.SINGLE_LABEL}
    | {WarningCode.LABEL_RATIO}
)
"""The codes of what judge() finds: judging the data again replaces these issues."""
FLOAT_SLACK = 1e-9
"""Relative slack for comparing ratios: the band's 4/3 is written as a decimal."""


@dataclass(frozen=True)
class TemplateFit:
    """The template the data is judged against, with its (KTO) weights, and which templates
    train each method, to name the ones that would fit the data."""

    template: str
    method: str
    templates_by_method: Mapping[str, Sequence[str]]
    desirable_weight: float | None = None
    undesirable_weight: float | None = None


def judge(
    datasets: Sequence[DatasetReport], fit: TemplateFit | None, config: DatasetsConfig
) -> list[Issue]:
    """Formats that no method trains, or no one method together; and against the template:
    formats its method does not train, and (KTO) the balance of the labels."""
    methods = config.formats.method_formats
    formats = sorted({str(r.trains_as) for r in datasets if r.trains_as is not None})
    described = "; ".join(f"{m}: {', '.join(fs)}" for m, fs in methods.items())
    untrainable = [f for f in formats if not any(f in fs for fs in methods.values())]
    issues = []
    if untrainable:
        issues.append(
            _error(
                ErrorCode.FORMAT_VS_METHOD,
                f"No training method here trains {', '.join(untrainable)} data ({described}).",
            )
        )
    elif formats and not any(set(formats) <= set(fs) for fs in methods.values()):
        issues.append(
            _error(
                ErrorCode.MIXED_FORMAT,
                f"The datasets are {', '.join(formats)}; no training method takes these "
                f"together ({described}).",
            )
        )
    if fit is None:
        return issues
    accepted = methods.get(fit.method, [])
    for fmt in formats:
        if fmt not in accepted and fmt not in untrainable:
            issues.append(_mismatch(fmt, [r for r in datasets if r.trains_as == fmt], fit, config))
    return issues + _balance(datasets, fit, config.warnings.kto_weighted_ratio)


def _mismatch(
    fmt: str, datasets: list[DatasetReport], fit: TemplateFit, config: DatasetsConfig
) -> Issue:
    """The template's method does not train `fmt`: the two ways out are another template, or
    (for preference data) the conversion to supervised data the server can do when asked, or
    for data converted so, validating it again as it is."""
    methods = config.formats.method_formats
    refs = ", ".join(r.ref for r in datasets)
    verb = "is" if len(datasets) == 1 else "are"
    originals = sorted({str(r.format) for r in datasets if r.converted is not None})
    source = (
        f', converted from {", ".join(originals)} by convert: "{CONVERT_TARGET}"'
        if originals
        else ""
    )
    message = (
        f"The {fit.template} template trains {fit.method} on "
        f"{', '.join(methods.get(fit.method, []))} data; {refs} {verb} {fmt} data{source}."
    )
    others = _templates_for([fmt], fit, config)
    ways = [f"apply a template that trains {fmt} data ({', '.join(others)})"] if others else []
    if originals:
        as_they_are = ", ".join(_templates_for(originals, fit, config))
        ways.append(
            f'validate_datasets again with convert: "none" to train the '
            f"{', '.join(originals)} data as it is ({as_they_are})"
        )
    elif fmt not in methods.get(CONVERT_TARGET, []):
        labelled = any(r.labels is not None for r in datasets)
        what = (
            "the desirable (label true) answers as supervised data, leaving the others out"
            if labelled
            else "the chosen answer of each pair as supervised data"
        )
        convert = f'validate_datasets again with convert: "{CONVERT_TARGET}" to train {what}'
        if fit.method != CONVERT_TARGET:
            sft = ", ".join(fit.templates_by_method.get(CONVERT_TARGET, ()))
            convert += f", with an SFT template ({sft})"
        ways.append(convert)
    if len(ways) > 1:
        fix = "Either " + ", or ".join(ways) + "."
    else:
        fix = f"{ways[0][:1].upper()}{ways[0][1:]}." if ways else FIXES[ErrorCode.FORMAT_VS_METHOD]
    return Issue(severity="error", code=ErrorCode.FORMAT_VS_METHOD, message=message, fix=fix)


def _templates_for(formats: list[str], fit: TemplateFit, config: DatasetsConfig) -> list[str]:
    """The templates whose method trains every one of `formats`."""
    return [
        template
        for method, trained in config.formats.method_formats.items()
        if set(formats) <= set(trained)
        for template in fit.templates_by_method.get(method, ())
    ]


def _balance(datasets: Sequence[DatasetReport], fit: TemplateFit, band: RatioBand) -> list[Issue]:
    """KTO (the template has label weights): both labels present, and weighted in the band."""
    weights = fit.desirable_weight, fit.undesirable_weight
    counts = [r.labels for r in datasets if r.labels is not None]
    desirable = sum(c.desirable for c in counts)
    undesirable = sum(c.undesirable for c in counts)
    if weights[0] is None or weights[1] is None or not desirable + undesirable:
        return []
    if not desirable or not undesirable:
        kind = "desirable (label true)" if desirable else "undesirable (label false)"
        fix = f"Add answers labelled {'false' if desirable else 'true'}"
        if desirable:
            fix += f', or train them with an SFT template (convert: "{CONVERT_TARGET}")'
        return [
            _error(
                ErrorCode.SINGLE_LABEL,
                f"All {desirable + undesirable:,} training examples are {kind}; {fit.method} "
                "learns from the contrast between desirable and undesirable answers and needs "
                "both.",
                fix + ".",
            )
        ]
    desirable_weight, undesirable_weight = weights
    ratio = desirable_weight * desirable / (undesirable_weight * undesirable)
    if band.min * (1 - FLOAT_SLACK) <= ratio <= band.max * (1 + FLOAT_SLACK):
        return []
    per_desirable = undesirable_weight * undesirable / desirable
    per_undesirable = desirable_weight * desirable / undesirable
    message = (
        f"The weighted ratio of desirable to undesirable training examples is {ratio:.2f} "
        f"(desirable_weight {desirable_weight:g} x {desirable:,} / (undesirable_weight "
        f"{undesirable_weight:g} x {undesirable:,})), outside [{band.min:g}, {band.max:.3g}] "
        "where the KTO paper (Eq. 8) balances the two labels."
    )
    fix = (
        f"Set desirable_weight {_between(band.min * per_desirable, band.max * per_desirable)} "
        f"or undesirable_weight {_between(per_undesirable / band.max, per_undesirable / band.min)}"
        " (one of the two) with apply_template."
    )
    return [Issue(severity="warning", code=WarningCode.LABEL_RATIO, message=message, fix=fix)]


def _between(low: float, high: float) -> str:
    """'between a and b': the bounds rounded inwards to as few decimals as keep a <= b."""
    for decimals in (2, 3, 4):
        scale = 10**decimals
        inner_low = math.ceil(low * scale * (1 - FLOAT_SLACK)) / scale
        inner_high = math.floor(high * scale * (1 + FLOAT_SLACK)) / scale
        if inner_low <= inner_high:
            return f"between {inner_low:g} and {inner_high:g}"
    return f"between {low:.6g} and {high:.6g}"


def _error(code: ErrorCode, message: str, fix: str | None = None) -> Issue:
    return Issue(severity="error", code=code, message=message, fix=fix or FIXES[code])
