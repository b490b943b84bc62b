"""Deriving an event's channel: the user rules, then the built-in ones, then the source.

The first rule that gives a channel of the taxonomy decides, and its name is kept
as `via` so a report can say why an event landed in its channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnicanal.core.channel_rules import builtin
from omnicanal.core.channel_rules.rule import Rule, configured_rules
from omnicanal.core.channel_rules.view import View
from omnicanal.core.channels import KINDS, MediaClass


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The channel of one event, its media class, and the rule that decided it."""

    channel: str
    media_class: MediaClass
    online: bool
    campaign: str | None
    via: str


def derive_channel(
    source_channel: str, message: Mapping[str, Any], rules: Sequence[Rule] | None = None
) -> ChannelInfo:
    """Return the channel of a message sent by a source of `source_channel`.

    Args:
        source_channel: the sending source's channel, the last resort.
        message: a Segment-spec message.
        rules: user rules tried first; None for those of the settings, () for none.
    """
    view = View(message if isinstance(message, Mapping) else {})
    campaign = view.campaign()
    for rule in configured_rules() if rules is None else rules:
        if (channel := rule.apply(view)) is not None:
            return _info(channel, rule.name, campaign)
    for name, step in builtin.STEPS:
        if (channel := step(view)) is not None:
            return _info(channel, name, campaign)
    # the parameter shadows the function's name here, hence the module prefix
    return _info(builtin.source_channel(source_channel), "source", campaign)


def _info(channel: str, via: str, campaign: str | None) -> ChannelInfo:
    kind = KINDS[channel.partition(":")[0]]
    return ChannelInfo(channel, kind.media_class, kind.online, campaign, via)
