"""The placeholder ``secrets.get(name)`` returns inside an isolate (``secrets.js``), and finding it again in
a ``fetch()`` URL or header value (``fetch.py``): ``__FLORA_SECRET_<encodeURIComponent(name)>__``."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

# secrets.get(name) -> "__FLORA_SECRET_<encodeURIComponent(name)>__"
_URI_COMPONENT_SAFE = "-_.!~*'()"
_TOKEN_CHARS = r"[A-Za-z0-9\-_.!~*'()%]"
#: Finds placeholders in a URL or header value; group 1 is the encoded name.
SECRET_PLACEHOLDER_RE = re.compile(rf"__FLORA_SECRET_({_TOKEN_CHARS}+?)__(?!{_TOKEN_CHARS})")


def secret_placeholder(name: str) -> str:
    """The placeholder ``secrets.get(name)`` returns inside an isolate."""
    return f"__FLORA_SECRET_{quote(name, safe=_URI_COMPONENT_SAFE)}__"


def replace_secret_placeholders(text: str, lookup) -> str:
    """Replace each placeholder in ``text`` by ``lookup(name)``; a ``None`` result leaves it as is."""

    def substitute(match: re.Match) -> str:
        value = lookup(unquote(match.group(1)))
        return match.group(0) if value is None else value

    return SECRET_PLACEHOLDER_RE.sub(substitute, text)
