"""Which hosts a secret may be sent to.

A secret's ``allowed_hosts`` entry is flora's host pattern: an exact host, or ``*.suffix`` which
matches ``suffix`` itself and its subdomains (not ``evil-suffix``); an entry may also be a full URL,
whose host is used. (Which addresses a script may reach at all is the core's SSRF guard,
``flora_core.netguard``, shared with attachment downloads.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flora_core.netguard import normalize_host


def pattern_host(pattern: str) -> str:
    """The host part of an ``allowed_hosts`` entry (bare host, ``host:port``, or a URL)."""
    text = pattern.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return normalize_host(text.split("]", 1)[0] + "]")
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return normalize_host(text.split("/", 1)[0])


def host_matches(host: str, pattern: str) -> bool:
    host = normalize_host(host)
    want = pattern_host(pattern)
    if not want:
        return False
    if want.startswith("*."):
        suffix = want[2:]
        return bool(suffix) and (host == suffix or host.endswith("." + suffix))
    return host == want


def host_allowed(host: str, patterns) -> bool:
    """An empty list allows every host (flora's rule)."""
    patterns = list(patterns or ())
    return not patterns or any(host_matches(host, p) for p in patterns)
