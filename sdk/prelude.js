// flora runtime prelude: the globals every guild script can use before the SDK.
//
//   on(event, handler)              subscribe to a Discord event
//   console.log/info/warn/error/debug(...args)   write to the guild's log
//   registerSlashCommands(commands) bulk-overwrite the guild's slash commands
//
// and the context every handler receives (ctx.msg, ctx.reply, ctx.edit, and for interactions
// ctx.showModal, ctx.update). `cron` and `secrets` come from the cron and secrets plugins, which
// extend the SDK (flora.js: __floraProvide).
//
// Loaded after the runtime's own JavaScript (flora_core/runtime/glue.js: __floraOp, __floraGuildId;
// events.js: __floraOn, __floraDefineContext, __floraDispatch) and before flora.js. Every call into
// the runtime goes through
//   __floraOp(opName, argsObject) -> Promise
// There are no synchronous ops.
(function floraPrelude() {
  "use strict";
  const g = globalThis;

  // The runtime's op bridge, looked up at call time.
  function op(name, args) {
    return g.__floraOp(name, args);
  }

  // ---------------------------------------------------------------- handlers
  // The runtime keeps the handlers (events.js); it reads the subscribed event names after a load
  // and whenever one gets its first handler, so that only events a script listens to enter the isolate.
  g.on = function on(event, handler) {
    g.__floraOn(event, handler);
  };

  // ------------------------------------------------------- reply / edit shapes
  // ctx.reply(): an interaction is answered through its token; anything else
  // becomes a channel message that replies to the triggering message unless
  // `replyTo: null` is given (or `replyTo: "<id>"` points elsewhere).
  function normalizeReply(message, payload) {
    if (payload && payload.interactionToken) {
      return normalizeInteractionReply(message, payload);
    }
    const base = { channelId: payload ? payload.channelId : undefined };
    const replyId = payload ? (payload.id ?? payload.messageId) : undefined;

    if (typeof message === "string") {
      return { ...base, messageId: replyId, content: message };
    }
    if (message && typeof message === "object") {
      const normalized = { ...base, ...message };
      const explicitReplyTo = message.replyTo;
      if (explicitReplyTo === null) {
        delete normalized.messageId;
      } else if (explicitReplyTo !== undefined) {
        normalized.messageId = explicitReplyTo;
      } else if (replyId) {
        normalized.messageId = replyId;
      }
      delete normalized.replyTo;
      delete normalized.reply_to;
      return normalized;
    }
    return { ...base, messageId: replyId, content: String(message) };
  }

  function normalizeInteractionReply(message, payload) {
    const base = {
      interactionId: payload.interactionId ?? payload.id,
      token: payload.interactionToken,
    };
    if (typeof message === "string") {
      return { ...base, content: message };
    }
    if (message && typeof message === "object") {
      return { ...base, ...message };
    }
    return { ...base, content: String(message) };
  }

  // ctx.edit() always edits a channel message: the triggering one, or the
  // message that carries the clicked component.
  function normalizeEdit(message, payload) {
    const messageId = payload ? (payload.id ?? payload.messageId) : undefined;
    if (!messageId || !payload.channelId) {
      throw new Error("Message edit requires a message payload");
    }
    const base = { channelId: payload.channelId, messageId };
    if (typeof message === "string") {
      return { ...base, content: message };
    }
    if (message && typeof message === "object") {
      return { ...base, ...message };
    }
    return { ...base, content: String(message) };
  }

  function makeContext(payload) {
    const ctx = {
      msg: payload,
      reply(message) {
        const options = normalizeReply(message, payload);
        if (options.interactionId && options.token) {
          return op("op_send_interaction_response", options);
        }
        return op("op_send_message", options);
      },
      edit(message) {
        return op("op_edit_message", normalizeEdit(message, payload));
      },
    };
    if (payload && payload.interactionToken) {
      // Beyond flora: answer an interaction with a modal, or by updating the message
      // that carries the clicked component (callback type 7).
      ctx.showModal = (modal) => {
        const m = modal && typeof modal.toJSON === "function" ? modal.toJSON() : modal || {};
        return op("op_show_modal", {
          ...normalizeInteractionReply({}, payload),
          customId: m.customId ?? m.custom_id,
          title: m.title,
          components: (m.components || []).map((c) => (c && typeof c.toJSON === "function" ? c.toJSON() : c)),
        });
      };
      ctx.update = (message) => op("op_update_interaction_response", normalizeInteractionReply(message, payload));
    }
    return ctx;
  }

  // ------------------------------------------------------------------ context
  // What every handler receives (cron's "__cron:" events define their own, in the cron plugin).
  g.__floraDefineContext("", (payload) => makeContext(payload));

  // ------------------------------------------------------------------ console
  // Strings as they are; everything else as JSON, never throwing.
  function formatValue(value) {
    if (typeof value === "string") return value;
    if (value === undefined) return "undefined";
    if (typeof value === "function") return `[Function: ${value.name || "anonymous"}]`;
    if (typeof value === "symbol" || typeof value === "bigint") return String(value);
    if (value instanceof Error) return value.stack ? String(value.stack) : `${value.name}: ${value.message}`;
    try {
      let text;
      try {
        text = JSON.stringify(value, jsonValue);
      } catch (_) {
        text = JSON.stringify(value, cycleSafe());
      }
      return text === undefined ? String(value) : text;
    } catch (_) {
      return "[unprintable]";
    }
  }

  // BigInt -> "123n"; functions and symbols by name instead of vanishing.
  function jsonValue(_key, value) {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "function") return `[Function: ${value.name || "anonymous"}]`;
    if (typeof value === "symbol") return String(value);
    return value;
  }

  // Only used once plain JSON failed (a cycle): repeated objects -> "[Circular]".
  function cycleSafe() {
    const seen = new WeakSet();
    return function replacer(key, value) {
      value = jsonValue(key, value);
      if (value && typeof value === "object") {
        if (seen.has(value)) return "[Circular]";
        seen.add(value);
      }
      return value;
    };
  }

  function makeLogger(level) {
    return function log(...args) {
      try {
        const promise = op("op_log", { level, args: args.map(formatValue) });
        if (promise && typeof promise.catch === "function") promise.catch(() => {});
      } catch (_) {
        // Logging never breaks a script.
      }
    };
  }

  g.console = {
    log: makeLogger("info"),
    info: makeLogger("info"),
    warn: makeLogger("warn"),
    error: makeLogger("error"),
    debug: makeLogger("debug"),
  };

  // ---------------------------------------------------------- slash commands
  // Bulk-overwrites the guild's commands; returns undefined outside a guild.
  g.registerSlashCommands = function registerSlashCommands(commands) {
    if (!g.__floraGuildId) return undefined;
    return op("op_upsert_guild_commands", { guildId: g.__floraGuildId, commands });
  };
})();
