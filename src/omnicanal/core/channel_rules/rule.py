"""User rules: the settings' `OMNICANAL_CHANNELS__RULES`, tried before the built-in ones.

They let a retailer name channels the built-in tables cannot know (its press
partners, its events) without code; they are compiled once per settings object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING

from omnicanal.core.channel_rules.naming import valid_channel
from omnicanal.core.settings import RuleSpec, get_settings

if TYPE_CHECKING:
    from omnicanal.core.channel_rules.view import View


@dataclass(frozen=True, slots=True)
class Rule:
    """A user rule: when `pattern` is found in the message's `field`, use `channel`.

    `field` is a dotted path (`context.campaign.source`); a last segment ending in
    `_host` reads the host of the URL in the field without it
    (`context.page.referrer_host`), and `utm.<name>` reads a campaign value from
    `context.campaign` or the page URL's `utm_<name>`. `channel` may use `{source}`
    (the normalised utm source) and `{match}` (the pattern's first group, or the match).
    """

    name: str
    field: str
    pattern: str
    channel: str
    _regex: re.Pattern[str] = dataclass_field(init=False, repr=False, compare=False)
    _path: tuple[str, ...] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern, re.IGNORECASE))
        object.__setattr__(self, "_path", tuple(self.field.split(".")))

    @classmethod
    def from_spec(cls, spec: RuleSpec) -> Rule:
        """Build a rule from its settings entry."""
        return cls(name=spec.name, field=spec.field, pattern=spec.pattern, channel=spec.channel)

    def apply(self, view: View) -> str | None:
        """Return the channel this rule gives the message, or None."""
        value = view.field(self._path)
        match = self._regex.search(value) if value else None
        if match is None:
            return None
        found = match.group(1) if self._regex.groups else match.group(0)
        template = self.channel.replace("{source}", view.utm().get("source") or "")
        template = template.replace("{match}", found or "")
        return valid_channel(template)


def compile_rules(specs: Iterable[RuleSpec]) -> tuple[Rule, ...]:
    """Compile the rules of the settings, keeping their order."""
    return tuple(Rule.from_spec(spec) for spec in specs)


class _Configured:
    """The settings' rules, compiled once per settings object."""

    specs: object = None
    rules: tuple[Rule, ...] = ()


def configured_rules() -> tuple[Rule, ...]:
    """Return the compiled user rules of the current settings."""
    specs = get_settings().channels.rules
    if specs is not _Configured.specs:
        _Configured.rules = compile_rules(specs)
        _Configured.specs = specs
    return _Configured.rules
