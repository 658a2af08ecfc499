"""Built-in plugin: the ops that reach Discord REST for scripts (reference §2.4).

Every op validates its input with flora's argument names and messages, checks that what it touches
belongs to the calling guild (``SCOPE_FORBIDDEN`` otherwise, and nothing is sent), and reports failures
with flora's codes. One module per family:

* ``ops_messages``      messages, pins, reactions                        (channel scope)
* ``ops_interactions``  interaction responses, original, follow-ups, modal (interactions of this guild)
* ``ops_commands``      guild application commands and permissions         (guild scope)
* ``ops_members``       members, roles, bans                               (guild scope)
* ``ops_channels``      channels and threads                               (guild / channel / thread scope)
* ``ops_webhooks``      webhooks                                           (webhook scope, + thread)

Scripts call them through ``rest.<method>`` (``rest.js``, this plugin's extension of the SDK: one method
per op, ``op_`` + the method's name in snake_case) and the SDK's ``ctx.reply``/``ctx.edit``.

Input parsing lives in ``messages`` (bodies, embeds, mentions), ``components`` and ``attachments``;
``transport`` sends (JSON, multipart, read retries); ``download`` fetches attachment URLs (behind ``flora_core.netguard``, the guard ``fetch`` uses).
"""

from __future__ import annotations

from flora_core import hookimpl

from . import ops_channels, ops_commands, ops_interactions, ops_members, ops_messages, ops_webhooks
from .messages import EPHEMERAL, edit_body, message_body, require_dict, snowflake  # noqa: F401 - public helpers
from .ops_commands import op_upsert_guild_commands  # noqa: F401
from .ops_interactions import op_defer_interaction_response, op_send_interaction_response  # noqa: F401
from .ops_messages import op_add_reaction, op_delete_message, op_edit_message, op_send_message  # noqa: F401

ALL_OPS = [
    *ops_messages.OPS,
    *ops_interactions.OPS,
    *ops_commands.OPS,
    *ops_members.OPS,
    *ops_channels.OPS,
    *ops_webhooks.OPS,
]


@hookimpl
def flora_register_ops(register):
    for fn in ALL_OPS:
        register(fn.__name__, fn)


@hookimpl
def flora_register_js_sources(register):
    from importlib import resources

    # rest.* for scripts: extends the SDK (flora.js, order 20), so after it
    register("flora:rest", resources.files(__name__).joinpath("rest.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    from importlib import resources

    register("flora:rest", resources.files(__name__).joinpath("rest.d.ts"), requires=["flora:sdk"])
