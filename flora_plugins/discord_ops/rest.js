// rest.* for guild scripts: the discord_ops plugin's extension of the SDK (`rest`, a global and a
// member of `flora`), one method per Discord op of this plugin.
(function floraRest() {
  "use strict";
  const g = globalThis;
  const provide = g.__floraProvide;
  if (typeof provide !== "function") return; // the sdk plugin is disabled: there is no SDK to extend

  function op(name, args) {
    return g.__floraOp(name, args);
  }

  // ====================================================================
  // REST: one Discord call per method, arguments passed through unchanged
  // (camelCase keys, ids as strings). Failures reject with an Error whose
  // `code` is DISCORD_RATE_LIMITED, DISCORD_HTTP_ERROR, SCOPE_FORBIDDEN or
  // INVALID_INPUT. Only the guild's own channels, threads and webhooks are
  // reachable.
  // ====================================================================

  const REST_OPS = {
    // messages
    sendMessage: "op_send_message", // {channelId, content?, embeds?, components?, attachments?, replyTo?, ...} -> message
    editMessage: "op_edit_message", // {channelId, messageId, content?, embeds?, components?, allowedMentions?, flags?}
    deleteMessage: "op_delete_message", // {channelId, messageId}
    bulkDeleteMessages: "op_bulk_delete_messages", // {channelId, messageIds}
    pinMessage: "op_pin_message", // {channelId, messageId}
    unpinMessage: "op_unpin_message", // {channelId, messageId}
    crosspostMessage: "op_crosspost_message", // {channelId, messageId} -> message
    fetchMessage: "op_fetch_message", // {channelId, messageId} -> message
    fetchMessages: "op_fetch_messages", // {channelId, limit?, before?, after?, around?} -> message[]
    addReaction: "op_add_reaction", // {channelId, messageId, emoji}
    removeReaction: "op_remove_reaction", // {channelId, messageId, emoji, userId?}
    clearReactions: "op_clear_reactions", // {channelId, messageId, emoji?}
    // interactions
    sendInteractionResponse: "op_send_interaction_response", // {interactionId, token, content?, ..., ephemeral?}
    deferInteractionResponse: "op_defer_interaction_response", // {interactionId, token, ephemeral?}
    updateInteractionResponse: "op_update_interaction_response", // {interactionId, token, content?, ...}
    showModal: "op_show_modal", // {interactionId, token, customId, title, components} (beyond flora)
    editOriginalInteractionResponse: "op_edit_original_interaction_response", // {token, content?, ...} -> message
    deleteOriginalInteractionResponse: "op_delete_original_interaction_response", // {token}
    createFollowupMessage: "op_create_followup_message", // {token, content?, ...} -> message
    editFollowupMessage: "op_edit_followup_message", // {token, messageId, content?, ...} -> message
    deleteFollowupMessage: "op_delete_followup_message", // {token, messageId}
    // application commands
    upsertGuildCommands: "op_upsert_guild_commands", // {guildId, commands}
    createGuildCommand: "op_create_guild_command", // {guildId, command} -> command
    editGuildCommand: "op_edit_guild_command", // {guildId, commandId, command} -> command
    deleteGuildCommand: "op_delete_guild_command", // {guildId, commandId}
    getGuildCommands: "op_get_guild_commands", // {guildId} -> command[]
    getGuildCommand: "op_get_guild_command", // {guildId, commandId} -> command
    editGuildCommandPermissions: "op_edit_guild_command_permissions", // {guildId, commandId, permissions}
    getGuildCommandsPermissions: "op_get_guild_commands_permissions", // {guildId} -> permissions[]
    getGuildCommandPermissions: "op_get_guild_command_permissions", // {guildId, commandId}
    // members
    kickMember: "op_kick_member", // {guildId, userId, reason?}
    banMember: "op_ban_member", // {guildId, userId, deleteMessageSeconds?, reason?}
    unbanMember: "op_unban_member", // {guildId, userId, reason?}
    addMemberRole: "op_add_member_role", // {guildId, userId, roleId, reason?}
    removeMemberRole: "op_remove_member_role", // {guildId, userId, roleId, reason?}
    editMember: "op_edit_member", // {guildId, userId, payload, reason?} -> member
    editCurrentMember: "op_edit_current_member", // {guildId, payload, reason?} -> member
    // channels and threads
    createChannel: "op_create_channel", // {guildId, payload, reason?} -> channel
    editChannel: "op_edit_channel", // {channelId, payload, reason?} -> channel
    deleteChannel: "op_delete_channel", // {channelId, reason?} -> channel
    createThread: "op_create_thread", // {channelId, payload, reason?} -> channel
    createThreadFromMessage: "op_create_thread_from_message", // {channelId, messageId, payload, reason?} -> channel
    joinThread: "op_join_thread", // {threadId}
    leaveThread: "op_leave_thread", // {threadId}
    addThreadMember: "op_add_thread_member", // {threadId, userId}
    removeThreadMember: "op_remove_thread_member", // {threadId, userId}
    // webhooks
    executeWebhook: "op_execute_webhook", // {webhookId, token, wait?, threadId?, content?, ...} -> message | null
    editWebhook: "op_edit_webhook", // {webhookId, token?, payload, reason?} -> webhook
    deleteWebhook: "op_delete_webhook", // {webhookId, token?, reason?}
  };

  const rest = {};
  for (const [method, opName] of Object.entries(REST_OPS)) {
    rest[method] = (args) => op(opName, args);
  }

  provide("rest", rest);
})();
