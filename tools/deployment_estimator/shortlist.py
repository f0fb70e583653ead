"""Which of an estimate's options an answer lists in full: those worth choosing between.

An estimate ranks a dozen targets, and most of them lose to another on both counts: a10g-large
trains no faster than a10g-small and costs more, an L4 is slower and dearer than an L40S here.
Listing each in full costs the reader (and every byte on the wire) more than it tells. The
shortlist keeps each option that fits, runs the config and is beaten by no other on both cost
and time, plus the ones the caller must see (recommended, chosen, the local machine); every
other target gets one line with its figures or why it is out. When nothing fits, the option
with the most memory per GPU is listed, as the nearest miss.
"""

from collections.abc import Collection

from tools.deployment_estimator.results import DeploymentOption


def shortlist(
    ranked: list[DeploymentOption], keep: Collection[str]
) -> tuple[list[DeploymentOption], list[str]]:
    """The options to list in full (in rank order), and a line for each of the others."""
    usable = [o for o in ranked if o.fits and o.compatible]
    wanted = set(keep)
    if not usable and ranked:
        wanted.add(max(ranked, key=lambda o: o.usable_memory_gb).target)
    wanted.update(o.target for o in usable if not _beaten(o, usable))
    listed = [o for o in ranked if o.target in wanted]
    return listed, [_line(o) for o in ranked if o.target not in wanted]


def _beaten(option: DeploymentOption, usable: list[DeploymentOption]) -> bool:
    """Another usable option costs no more and takes no longer, and is better at one."""
    return any(
        other.cost_usd <= option.cost_usd
        and other.hours <= option.hours
        and (other.cost_usd < option.cost_usd or other.hours < option.hours)
        for other in usable
    )


def _line(option: DeploymentOption) -> str:
    if not option.fits:
        return (
            f"{option.target}: does not fit ({option.peak_memory_gb:.1f} GB per GPU needed, "
            f"{option.usable_memory_gb:.1f} usable)"
        )
    figures = f"{option.target}: ${option.cost_usd:.2f}, {option.hours:.2f} h"
    return figures if option.compatible else f"{figures}, no bf16 (train in fp16)"
