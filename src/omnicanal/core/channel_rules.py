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
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from omnicanal.core.channels import KINDS, MediaClass
from omnicanal.core.settings import RuleSpec, get_settings

MAX_CAMPAIGN_CHARS = 255
_MAX_QUALIFIER = 63


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The channel of one event, its media class, and the rule that decided it."""

    channel: str
    media_class: MediaClass
    online: bool
    campaign: str | None
    via: str


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

    def apply(self, view: _View) -> str | None:
        """Return the channel this rule gives the message, or None."""
        value = view.field(self._path)
        match = self._regex.search(value) if value else None
        if match is None:
            return None
        found = match.group(1) if self._regex.groups else match.group(0)
        template = self.channel.replace("{source}", view.utm().get("source") or "")
        template = template.replace("{match}", found or "")
        return _valid_channel(template)


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


def derive_channel(
    source_channel: str, message: Mapping[str, Any], rules: Sequence[Rule] | None = None
) -> ChannelInfo:
    """Return the channel of a message sent by a source of `source_channel`.

    Args:
        source_channel: the sending source's channel, the last resort.
        message: a Segment-spec message.
        rules: user rules tried first; None for those of the settings, () for none.
    """
    view = _View(message if isinstance(message, Mapping) else {})
    campaign = view.campaign()
    for rule in configured_rules() if rules is None else rules:
        if (channel := rule.apply(view)) is not None:
            return _info(channel, rule.name, campaign)
    for name, step in _STEPS:
        if (channel := step(view)) is not None:
            return _info(channel, name, campaign)
    return _info(_source_channel(source_channel), "source", campaign)


def _info(channel: str, via: str, campaign: str | None) -> ChannelInfo:
    kind = KINDS[channel.partition(":")[0]]
    return ChannelInfo(channel, kind.media_class, kind.online, campaign, via)


# -- reading a message -----------------------------------------------------------------


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


_EMPTY: Mapping[str, Any] = {}
_UTM_KEYS = {
    "name": "name",
    "campaign": "name",
    "source": "source",
    "medium": "medium",
    "term": "term",
    "content": "content",
}


class _View:
    """The parts of a message the rules read, each looked up or parsed once."""

    __slots__ = ("_query", "_utm", "context", "msg", "page", "properties")

    def __init__(self, msg: Mapping[str, Any]) -> None:
        self.msg = msg
        self.context = _dict(msg.get("context"))
        self.page = _dict(self.context.get("page"))
        self.properties = _dict(msg.get("properties"))
        self._query: dict[str, str] | None = None
        self._utm: dict[str, str] | None = None

    def url(self) -> str:
        return _str(self.page.get("url")) or _str(self.properties.get("url"))

    def referrer(self) -> str:
        return _str(self.page.get("referrer")) or _str(self.properties.get("referrer"))

    def query(self) -> dict[str, str]:
        """Return the page URL's query parameters (lower-case names, first value kept)."""
        if self._query is None:
            self._query = {}
            for holder in (self.page, self.properties):
                search, url = holder.get("search"), holder.get("url")
                if isinstance(search, str) and "=" in search:
                    self._query = _parse_query(search)
                elif isinstance(url, str) and "?" in url and "=" in url:
                    self._query = _parse_query(url[url.index("?") :])
                else:
                    continue
                break
        return self._query

    def utm(self) -> dict[str, str]:
        """Return the campaign: `context.campaign` first, then the URL's `utm_*`."""
        if self._utm is None:
            utm: dict[str, str] = {}
            for key, value in _dict(self.context.get("campaign")).items():
                name = (
                    _UTM_KEYS.get(key.lower().removeprefix("utm_"))
                    if isinstance(key, str)
                    else None
                )
                if name and name not in utm and (text := _str(value).strip()):
                    utm[name] = text
            query = self.query()
            if query:
                for key, name in (
                    ("utm_campaign", "name"),
                    ("utm_source", "source"),
                    ("utm_medium", "medium"),
                    ("utm_term", "term"),
                    ("utm_content", "content"),
                ):
                    if name not in utm and (text := query.get(key, "").strip()):
                        utm[name] = text
            if "source" in utm:
                utm["source"] = _source_name(utm["source"]) or ""
            self._utm = utm
        return self._utm

    def campaign(self) -> str | None:
        if not self.context.get("campaign") and not self.query():
            return None
        name = self.utm().get("name")
        return name[:MAX_CAMPAIGN_CHARS] if name else None

    def field(self, path: tuple[str, ...]) -> str:
        """Return the text at a dotted path, with the `_host` and `utm.` virtual fields."""
        if path[0] == "utm" and len(path) == 2:
            return self.utm().get(_UTM_KEYS.get(path[1], path[1]), "")
        value = _walk(self.msg, path)
        if value is None and path[-1].endswith("_host"):
            base = _walk(self.msg, (*path[:-1], path[-1].removesuffix("_host")))
            return _host(base) if isinstance(base, str) else ""
        return _scalar(value)


def _walk(value: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _parse_query(search: str) -> dict[str, str]:
    """Parse `?a=1&b=2#x` (the leading `?` optional)."""
    query = search.partition("#")[0].lstrip("?")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        params.setdefault(key.strip().lower(), value)
    return params


_HOST = re.compile(
    r"^\s*(?:[a-z][a-z0-9+.-]*:)?//(?:[^/?#@\s]*@)?([a-z0-9_-][^/?#:@\s\\]*)", re.IGNORECASE
)
_BARE_HOST = re.compile(r"^\s*([a-z0-9-]+(?:\.[a-z0-9-]+)+)\.?(?:[/:?#]|\s*$)", re.IGNORECASE)


def _host(url: str) -> str:
    """Return a URL's host, lower-cased, without `www.`; "" when there is none."""
    match = _HOST.match(url) or _BARE_HOST.match(url)
    if match is None:
        return ""
    host = match[1].lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


# -- names: qualifiers, sources, hosts ---------------------------------------------------

_QUALIFIER_DROP = re.compile(r"[^a-z0-9_.-]+")


def _qualifier(value: str) -> str:
    """Return text in the taxonomy's qualifier syntax, or "" when nothing is left."""
    if not value.isascii():
        value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    value = _QUALIFIER_DROP.sub("-", value.strip().lower()).lstrip("_.-")
    return value[:_MAX_QUALIFIER].rstrip("-")


def _channel(kind: str, qualifier: str) -> str | None:
    """Return `kind[:qualifier]` when the kind is in the taxonomy, else None."""
    if kind not in KINDS:
        return None
    return f"{kind}:{qualifier}" if qualifier else kind


def _table(text: str) -> dict[str, str]:
    """Read `value: key key ...` lines into {key: value}."""
    table: dict[str, str] = {}
    for line in text.strip().splitlines():
        value, _, keys = line.partition(": ")
        table.update(dict.fromkeys(keys.split(), value.strip()))
    return table


# Network and engine names as people write them in utm_source.
_SOURCE_ALIASES = _table("""
facebook: fb face facebook_ads fb_ads
instagram: ig insta instagram_ads
x: twitter tw
linkedin: li lnkd
youtube: yt
tiktok: tt tiktok_ads
pinterest: pin
snapchat: snap
google: adwords google_ads googleads gads pmax
bing: microsoft microsoft_ads msads bing_ads
""")


@lru_cache(maxsize=4096)
def _source_name(raw: str) -> str:
    """Return the normalised utm source: `m.facebook.com`, `fb`, `Facebook` -> `facebook`."""
    text = raw.strip().lower()
    if "." in text:
        host = _host(text)
        network = _host_network(host) if host else None
        if network is not None:
            return network
    key = _SEPARATORS.sub("_", text)
    return _SOURCE_ALIASES.get(key) or _qualifier(text)


_SEARCH_ENGINES = frozenset(
    {"google", "bing", "qwant", "ecosia", "duckduckgo", "yahoo", "yandex", "baidu", "lilo"}
    | {"startpage", "brave", "naver", "seznam", "ask", "aol"}
)
_SOCIAL_BRANDS = {
    **{n: n for n in ("facebook", "instagram", "tiktok", "pinterest", "youtube", "linkedin")},
    **{n: n for n in ("snapchat", "reddit", "threads", "whatsapp")},
    **{"twitter": "x", "bsky": "bluesky"},
}

# Hosts that the brand of their domain does not name, and mobile apps' referrers
# (`android-app://<package>`).
_HOSTS = _table("""
social:x: t.co x.com com.twitter.android
social:linkedin: lnkd.in com.linkedin.android
social:youtube: youtu.be
social:pinterest: pin.it com.pinterest
social:facebook: fb.me fb.com com.facebook.katana com.facebook.orca
social:instagram: com.instagram.android
social:tiktok: com.zhiliaoapp.musically
social:snapchat: com.snapchat.android
social:reddit: com.reddit.frontpage
social:whatsapp: wa.me
search:google: com.google.android.googlequicksearchbox
ads:google: googleadservices.com
email: mail.google.com outlook.live.com outlook.office.com outlook.office365.com
email: com.google.android.gm com.microsoft.office.outlook
""")
# Payment pages and sign-in services send people back to the site mid-visit: they
# are not where the visit came from.
_IGNORED_BRANDS = frozenset(
    {"paypal", "stripe", "adyen", "klarna", "payplug", "getalma", "mollie", "payzen"}
    | {"systempay", "lyra", "monext", "payline", "sumup", "lydia", "3dsecure"}
)
_IGNORED_HOSTS = frozenset({"accounts.google.com", "appleid.apple.com", "login.live.com"})
_WEBMAIL = re.compile(r"^(?:web)?mail\d*\.|^email\.|^messagerie\.|^webmail")
# Second-level labels under country domains: google.co.uk, google.com.br.
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "gouv"})
_IGNORED = "-"  # a host classification meaning "not the origin of the visit"


def _brand(labels: list[str]) -> str:
    """Return the label before the public suffix: `google` in `www.google.co.uk`."""
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


def _site(host: str) -> str:
    """Return the registrable part of a host: `shop.example.fr` -> `example.fr`."""
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


def _host_network(host: str) -> str | None:
    """Return the search engine or social network a host belongs to, if any."""
    channel = _classify_host(host)
    if channel and ":" in channel:
        return channel.partition(":")[2]
    return None


@lru_cache(maxsize=8192)
def _classify_host(host: str) -> str | None:
    """Return a referring host's channel, `_IGNORED`, or None for an ordinary site."""
    if host in _HOSTS:
        return _HOSTS[host]
    if host in _IGNORED_HOSTS:
        return _IGNORED
    if _WEBMAIL.match(host):
        return "email"
    brand = _brand(host.split("."))
    if brand in _SEARCH_ENGINES:
        return f"search:{brand}"
    if brand in _SOCIAL_BRANDS:
        return f"social:{_SOCIAL_BRANDS[brand]}"
    if brand in _IGNORED_BRANDS:
        return _IGNORED
    return None


# -- the built-in rules ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _valid_channel(value: str) -> str | None:
    """Return a channel with its qualifier normalised (`Store:Paris 01` -> `store:paris-01`)."""
    kind, _, qualifier = value.partition(":")
    return _channel(kind.strip().lower(), _qualifier(qualifier))


def _explicit(view: _View) -> str | None:
    value = view.context.get("channel")
    return _valid_channel(value) if isinstance(value, str) and value else None


_PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "paid", "paidsearch", "paid_search", "sem", "sea", "display", "cpm"}
    | {"cpv", "banner", "paid_social", "paidsocial", "social_paid", "social_ads", "retargeting"}
    | {"remarketing", "ads", "ad", "paid_ads", "sponsored", "video", "paid_video"}
)
_META_NETWORKS = frozenset({"facebook", "instagram", "messenger", "threads", "meta"})
# Click ids added to landing-page URLs by ad platforms, affiliate networks and ESPs
# (`fbclid` is handled on its own); the first found in this order decides.
_CLICK_IDS = _table("""
ads:google: gclid gbraid wbraid dclid
ads:bing: msclkid
ads:tiktok: ttclid
ads:linkedin: li_fat_id
ads:x: twclid
ads:snapchat: sccid
ads:pinterest: epik
ads:reddit: rdt_cid
ads:yandex: yclid
affiliate:awin: awc
affiliate:tradedoubler: tduid
affiliate:cj: cjevent
affiliate:impact: irclickid
affiliate:rakuten: ranmid
email: mc_cid
""")


def _click_id(view: _View) -> str | None:
    query = view.query()
    campaign = view.context.get("campaign")
    if not query and not campaign:
        return None
    keys = set(query)
    if isinstance(campaign, Mapping):
        keys.update(k.lower() for k in campaign if isinstance(k, str))
    if "fbclid" in keys:
        return _fbclid(view)
    for key, channel in _CLICK_IDS.items():
        if key in keys:
            return channel
    return None


def _fbclid(view: _View) -> str:
    """Meta adds `fbclid` to every outbound link: only a paid medium makes it an ad."""
    utm = view.utm()
    source = utm.get("source", "")
    network = source if source in _META_NETWORKS else ""
    if _medium(utm.get("medium", "")) in _PAID_MEDIUMS:
        return f"ads:{network or 'meta'}"
    return f"social:{network if network and network != 'meta' else 'facebook'}"


# utm_medium (lower case, `-` and spaces as `_`, accents dropped) -> kind; `:source`
# qualifies the kind with the normalised utm_source.
_MEDIUM_TABLE = _table("""
email: email e_mail emailing newsletter crm mail
sms: sms texto mms rcs
push: push notification push_notification web_push notif
social:source: social social_network social_media socialmedia organic_social social_organic sm
affiliate:source: affiliate affiliation affiliates cpa
referral: referral referal referer
press:source: print press presse magazine pr
direct_mail: direct_mail courrier mailing postal catalogue
street: qr qrcode qr_code flyer street tract street_marketing
influencer:source: influence influencer influenceur influencers influenceurs
event:source: event events evenement evenements salon
tv: tv television
radio: radio
outdoor: display_ooh ooh dooh affichage
marketplace:source: marketplace
search:source: organic seo
""")
_MEDIUMS: dict[str, tuple[str, bool]] = {
    **dict.fromkeys(_PAID_MEDIUMS, ("ads", True)),
    **{m: (v.partition(":")[0], v.endswith(":source")) for m, v in _MEDIUM_TABLE.items()},
}
_SEPARATORS = re.compile(r"[\s\-]+")


def _medium(raw: str) -> str:
    text = raw.strip().lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _SEPARATORS.sub("_", text)


def _utm(view: _View) -> str | None:
    if not view.context.get("campaign") and not view.query():
        return None
    utm = view.utm()
    found = _MEDIUMS.get(_medium(utm.get("medium", "")))
    if found is None:
        return None
    kind, qualified = found
    return _channel(kind, utm.get("source", "") if qualified else "")


def _referrer(view: _View) -> str | None:
    referrer = view.referrer()
    host = _host(referrer) if referrer else ""
    if not host:
        return None
    channel = _classify_host(host)
    if channel == _IGNORED:
        return None
    if channel is not None:
        return channel
    page = _host(view.url())
    if page and _site(page) == _site(host):
        return None  # a link inside the site: the visit's origin is elsewhere
    return "referral"


_STEPS = (("explicit", _explicit), ("click_id", _click_id), ("utm", _utm), ("referrer", _referrer))


@lru_cache(maxsize=1024)
def _source_channel(value: str) -> str:
    """Return the source's channel; one outside the taxonomy counts as `server`."""
    return (_valid_channel(value) if isinstance(value, str) else None) or "server"
