"""Which channel an event came through, derived from the message and its source.

Rules, tried in order; the first that gives a channel of the taxonomy decides, and
its name is kept as `via` (docs/concepts/channels.md has the full tables):

0. user rules from the settings (`OMNICANAL_CHANNELS__RULES`), in their order;
1. `explicit`: `context.channel`, set by importers and tills (`store:paris`);
2. `click_id`: an ad platform's click id in the page URL or the campaign
   (`gclid` -> `ads:google`, `fbclid` -> `social:facebook` or, with a paid medium,
   `ads:meta`);
3. `utm`: the campaign's medium and source (`cpc` + `google` -> `ads:google`);
4. `referrer`: the referring site (search engines, social networks, webmail; other
   sites are `referral`, the site itself and payment pages are ignored);
5. `source`: the channel of the source that sent the event (`web`, `store:paris`).

Nothing in a message makes derivation fail: an unknown or malformed value is passed
over and the next rule decides. This runs for every event, so patterns are compiled
once, URLs are only parsed when they carry a query, and per-host answers are cached.

The modules, from the bottom up: `naming` (qualifiers, source names, referring hosts),
`view` (reading a message), `builtin` (rules 1-5), `rule` (user rules) and `derive`.
"""

from omnicanal.core.channel_rules.derive import ChannelInfo, derive_channel
from omnicanal.core.channel_rules.rule import Rule, compile_rules, configured_rules
from omnicanal.core.channel_rules.view import MAX_CAMPAIGN_CHARS

__all__ = [
    "MAX_CAMPAIGN_CHARS",
    "ChannelInfo",
    "Rule",
    "compile_rules",
    "configured_rules",
    "derive_channel",
]
