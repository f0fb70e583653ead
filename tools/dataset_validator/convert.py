"""Preference data as supervised data, when the user asks (validate_datasets convert: "sft").

A pair trains on its chosen side: the conversation that ends in the chosen answer. An unpaired
example trains when it is desirable (label true); an undesirable one is left out and counted,
since training on it would teach the answer it was labelled bad for. Records of other formats
are supervised data already and pass as they are.

The validator converts every example it accepts and the package builder converts the same
records again, so digests, the split, token counts and the packaged records all describe the
converted data.
"""

from dataclasses import replace

from tools.dataset_validator.formats import Example
from tools.dataset_validator.kinds import Format


def to_sft(example: Example) -> Example | None:
    """The supervised example `example` stands for; None when it is left out (undesirable).
    The example keeps its format, so the package builder can read its record's own fields."""
    if example.label is False:
        return None
    if example.rejected is None and example.label is None:
        return example
    return replace(example, rejected=None, rejected_details=None, label=None)


def converted(example: Example) -> bool:
    """Whether to_sft changes `example` (a pair, or a labelled answer)."""
    return example.rejected is not None or example.label is not None


def sft_format(example: Example) -> Format:
    """The supervised format a converted example trains as: a conversation when its turns are
    messages, else a prompt (empty for an implicit-prompt pair of strings) and a completion."""
    return Format.CHAT if example.conversational else Format.PROMPT_COMPLETION
