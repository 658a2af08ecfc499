// flora SDK: loaded into every guild isolate after prelude.js, before the
// guild's script. Every name below is a global AND a member of `flora`:
//
//   commands    prefix, slash, createBot, flattenCommands, handleSubcommand,
//               flattenInteractionOptions
//   helpers     hasRole, getSubcommand, getSubcommandGroup
//   embeds      embed, EmbedBuilder
//   components  actionRow, button, stringSelect, userSelect, roleSelect,
//               mentionableSelect, channelSelect, inputText, textDisplay,
//               thumbnail, section, mediaGallery, file, separator, container,
//               label, fileUpload (+ one *Builder class each)
//   constants   ButtonStyle(s), ComponentType, InputTextStyle(s), MessageFlags
//   storage     kv, store, KvStore
//   REST        rest (one method per Discord op)
//
// Plain JavaScript on purpose: this file is the documentation of last resort.
// Everything reaches the runtime through __floraOp(opName, args) -> Promise.
(function floraSdk() {
  "use strict";
  const g = globalThis;

  function op(name, args) {
    return g.__floraOp(name, args);
  }

  // ====================================================================
  // Commands
  // ====================================================================

  // prefix({name, description?, run(ctx)}): a message command, run as
  // `<prefix><name> arg1 arg2`; ctx.args holds the words after the name.
  function prefix(command) {
    return command;
  }

  // slash({name, description, options?, subcommands?, run?}): a slash command.
  // `subcommands` entries are {name, description, options?, run}; an entry with
  // `type: 'subcommand_group'` is a group holding its own `subcommands`
  // (`/admin user ban`). ctx.options holds the chosen options by name.
  function slash(command) {
    return command;
  }

  function isSubcommandGroup(entry) {
    return Boolean(entry) && (entry.type === "subcommand_group" ||
      (entry.type === undefined && Array.isArray(entry.subcommands) && typeof entry.run !== "function"));
  }

  function getCreateBotState() {
    if (!g.__floraCreateBotState) g.__floraCreateBotState = { initialized: false };
    return g.__floraCreateBotState;
  }

  // createBot({prefix = '!', commands | prefixCommands, slashCommands}):
  // routes messages and slash interactions to the commands and registers the
  // slash commands with Discord. Only the first call counts.
  function createBot(options) {
    const state = getCreateBotState();
    if (state.initialized) {
      g.console.log("[flora/sdk] createBot called multiple times; skipping duplicate registration");
      return;
    }
    state.initialized = true;

    const opts = options || {};
    const commandPrefix = opts.prefix ?? "!";
    const commands = opts.commands ?? opts.prefixCommands ?? [];
    const slashCommands = opts.slashCommands ?? [];

    g.on("messageCreate", async (ctx) => {
      if (!ctx.msg || !ctx.msg.content) return;
      if (ctx.msg.author?.bot) return;

      const content = ctx.msg.content.trim();
      if (!content.startsWith(commandPrefix)) return;

      const body = content.slice(commandPrefix.length).trim();
      const [commandName, ...args] = body.split(/\s+/);
      const command = commands.find((cmd) => cmd.name === commandName);
      if (!command) return;

      await command.run({ ...ctx, args });
    });

    g.on("interactionCreate", async (ctx) => {
      if (!ctx.msg) return;
      const command = slashCommands.find((cmd) => cmd.name === ctx.msg.commandName);
      if (!command) return;

      if (command.subcommands && command.subcommands.length > 0) {
        await handleSubcommand(ctx, command);
      } else if (command.run) {
        const options = flattenInteractionOptions(ctx.msg.data?.options || []);
        await command.run({ ...ctx, options });
      }
    });

    if (slashCommands.length && typeof g.registerSlashCommands === "function") {
      const registration = g.registerSlashCommands(flattenCommands(slashCommands));
      if (registration && typeof registration.catch === "function") {
        registration.catch((err) => {
          g.console.error(`[flora/sdk] registering slash commands failed: ${err && err.message ? err.message : err}`);
        });
      }
    }
  }

  function flattenSubcommand(sub) {
    if (isSubcommandGroup(sub)) {
      return {
        name: sub.name,
        description: sub.description,
        type: "subcommand_group",
        options: (sub.subcommands || []).map(flattenSubcommand),
      };
    }
    return { name: sub.name, description: sub.description, type: "subcommand", options: sub.options };
  }

  // The JSON Discord registration needs: subcommands (and groups) become
  // options of type 'subcommand' / 'subcommand_group'. Also records every
  // subcommand handler in globalThis.__floraSubcommands[commandName].
  function flattenCommands(commands) {
    g.__floraSubcommands = g.__floraSubcommands || {};
    return commands.map((cmd) => {
      if (cmd.subcommands && cmd.subcommands.length > 0) {
        const handlers = {};
        for (const sub of cmd.subcommands) {
          if (isSubcommandGroup(sub)) {
            const group = {};
            for (const inner of sub.subcommands || []) group[inner.name] = inner.run;
            handlers[sub.name] = group;
          } else {
            handlers[sub.name] = sub.run;
          }
        }
        g.__floraSubcommands[cmd.name] = handlers;
        return { name: cmd.name, description: cmd.description, options: cmd.subcommands.map(flattenSubcommand) };
      }
      return { name: cmd.name, description: cmd.description, options: cmd.options };
    });
  }

  // Finds the handler for `/cmd sub` or `/cmd group sub` in the command's own
  // definition, else in the map flattenCommands() recorded.
  function findSubcommandHandler(command, groupName, subName) {
    const entries = command.subcommands || [];
    let found;
    if (groupName === undefined) {
      found = entries.find((e) => e.name === subName && !isSubcommandGroup(e))?.run;
    } else {
      const group = entries.find((e) => e.name === groupName && isSubcommandGroup(e));
      found = group ? (group.subcommands || []).find((e) => e.name === subName)?.run : undefined;
    }
    if (typeof found === "function") return found;
    const recorded = g.__floraSubcommands?.[command.name];
    const fallback = groupName === undefined ? recorded?.[subName] : recorded?.[groupName]?.[subName];
    return typeof fallback === "function" ? fallback : undefined;
  }

  // Runs the subcommand (or grouped subcommand) the user chose, with
  // ctx.options = that subcommand's options. Does nothing if there is none.
  async function handleSubcommand(ctx, command) {
    const rawOptions = ctx.msg?.data?.options;
    if (!Array.isArray(rawOptions)) return;
    const first = rawOptions[0];
    if (!first) return;

    let handler;
    let chosen = first;
    if (first.type === 2) {
      chosen = (first.options || [])[0];
      if (!chosen) return;
      handler = findSubcommandHandler(command, first.name, chosen.name);
    } else {
      handler = findSubcommandHandler(command, undefined, first.name);
    }
    if (!handler) return;

    await handler({ ...ctx, options: flattenInteractionOptions(chosen.options || []) });
  }

  // Discord's nested option list -> {name: value}; subcommand (1) and
  // group (2) levels are walked through.
  function flattenInteractionOptions(options) {
    const result = {};
    for (const opt of options || []) {
      if (opt.type === 1 || opt.type === 2) {
        Object.assign(result, flattenInteractionOptions(opt.options || []));
      } else {
        result[opt.name] = opt.value;
      }
    }
    return result;
  }

  // ====================================================================
  // Helpers
  // ====================================================================

  function hasRole(ctx, roleId) {
    return ctx.msg.member?.roles?.includes(roleId) ?? false;
  }

  // Name of the first option: the subcommand, or the group when one is used.
  function getSubcommand(ctx) {
    const options = ctx.msg.data?.options;
    return Array.isArray(options) ? options[0]?.name : undefined;
  }

  function getSubcommandGroup(ctx) {
    const options = ctx.msg.data?.options;
    if (!Array.isArray(options)) return undefined;
    return options[0]?.type === 2 ? options[0].name : undefined;
  }

  // ====================================================================
  // Embeds (camelCase JSON: footer.iconUrl, author.iconUrl)
  // ====================================================================

  class EmbedBuilder {
    #embed;

    constructor(initial = {}) {
      this.#embed = { ...initial };
    }

    setTitle(title) { this.#embed.title = title; return this; }
    setDescription(description) { this.#embed.description = description; return this; }
    setUrl(url) { this.#embed.url = url; return this; }
    setColor(color) { this.#embed.color = color; return this; }
    // An ISO 8601 string, e.g. new Date().toISOString().
    setTimestamp(timestamp) { this.#embed.timestamp = timestamp; return this; }
    setFooter(text, iconUrl) { this.#embed.footer = { text, iconUrl }; return this; }
    setImage(url) { this.#embed.image = { url }; return this; }
    setThumbnail(url) { this.#embed.thumbnail = { url }; return this; }
    setAuthor(name, options) { this.#embed.author = { name, ...options }; return this; }

    addField(name, value, inline = false) {
      this.#embed.fields = [...(this.#embed.fields ?? []), { name, value, inline }];
      return this;
    }

    addFields(fields) {
      this.#embed.fields = [...(this.#embed.fields ?? []), ...fields];
      return this;
    }

    setFields(fields) {
      this.#embed.fields = [...fields];
      return this;
    }

    toJSON() {
      return { ...this.#embed };
    }
  }

  function embed(initial) {
    return new EmbedBuilder(initial);
  }

  // ====================================================================
  // Constants
  // ====================================================================

  const ButtonStyle = { Primary: 1, Secondary: 2, Success: 3, Danger: 4 };

  const ComponentType = {
    ActionRow: 1,
    Button: 2,
    StringSelect: 3,
    InputText: 4,
    UserSelect: 5,
    RoleSelect: 6,
    MentionableSelect: 7,
    ChannelSelect: 8,
    Section: 9,
    TextDisplay: 10,
    Thumbnail: 11,
    MediaGallery: 12,
    File: 13,
    Separator: 14,
    Container: 17,
    Label: 18,
    FileUpload: 19,
  };

  const InputTextStyle = { Short: 1, Paragraph: 2 };

  const MessageFlags = {
    CROSSPOSTED: 1,
    IS_CROSSPOST: 2,
    SUPPRESS_EMBEDS: 4,
    SOURCE_MESSAGE_DELETED: 8,
    URGENT: 16,
    HAS_THREAD: 32,
    EPHEMERAL: 64,
    LOADING: 128,
    FAILED_TO_MENTION_SOME_ROLES_IN_THREAD: 256,
    SUPPRESS_NOTIFICATIONS: 4096,
    IS_VOICE_MESSAGE: 8192,
    IS_COMPONENTS_V2: 32768,
  };

  // ====================================================================
  // Components (Discord's snake_case JSON). Anything that takes components
  // accepts builders or plain JSON objects with a numeric `type`.
  // ====================================================================

  function resolveComponent(value) {
    return value && typeof value.toJSON === "function" ? value.toJSON() : value;
  }

  // addComponents(a, b) and addComponents([a, b]) both work.
  function componentList(args) {
    return args.length === 1 && Array.isArray(args[0]) ? [...args[0]] : [...args];
  }

  class ActionRowBuilder {
    #components = [];

    addComponents(...components) { this.#components.push(...componentList(components)); return this; }
    setComponents(components) { this.#components = [...components]; return this; }

    toJSON() {
      return { type: ComponentType.ActionRow, components: this.#components.map(resolveComponent) };
    }
  }

  class ButtonBuilder {
    #data = { type: ComponentType.Button };

    setStyle(style) { this.#data.style = style; return this; }
    setCustomId(customId) { this.#data.custom_id = customId; return this; }
    // A link button (style 5).
    setUrl(url) { this.#data.style = 5; this.#data.url = url; return this; }
    // A premium button (style 6).
    setSkuId(skuId) { this.#data.style = 6; this.#data.sku_id = skuId; return this; }
    setLabel(label) { this.#data.label = label; return this; }
    // A unicode emoji, "<:name:id>", or {id, name, animated}.
    setEmoji(emoji) { this.#data.emoji = emoji; return this; }
    setDisabled(disabled = true) { this.#data.disabled = disabled; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  // Shared by the five select menus; `data` is the JSON being built.
  class SelectMenuBuilderBase {
    constructor(type, customId) {
      this.data = { type, custom_id: customId };
    }

    setCustomId(customId) { this.data.custom_id = customId; return this; }
    setPlaceholder(placeholder) { this.data.placeholder = placeholder; return this; }
    setMinValues(min) { this.data.min_values = min; return this; }
    setMaxValues(max) { this.data.max_values = max; return this; }
    setRequired(required = true) { this.data.required = required; return this; }
    setDisabled(disabled = true) { this.data.disabled = disabled; return this; }
    setChannelTypes(types) { this.data.channel_types = [...types]; return this; }
    // [{id, type: 'user' | 'role' | 'channel'}]
    setDefaultValues(values) { this.data.default_values = values.map((v) => ({ ...v })); return this; }
    setDefaultUsers(ids) { this.data.default_users = [...ids]; return this; }
    setDefaultRoles(ids) { this.data.default_roles = [...ids]; return this; }
    setDefaultChannels(ids) { this.data.default_channels = [...ids]; return this; }
    addDefaultUser(id) { this.data.default_users = [...(this.data.default_users ?? []), id]; return this; }
    addDefaultRole(id) { this.data.default_roles = [...(this.data.default_roles ?? []), id]; return this; }
    addDefaultChannel(id) { this.data.default_channels = [...(this.data.default_channels ?? []), id]; return this; }
    addDefaultValue(id, type) { this.data.default_values = [...(this.data.default_values ?? []), { id, type }]; return this; }

    toJSON() {
      return { ...this.data };
    }
  }

  class StringSelectMenuBuilder extends SelectMenuBuilderBase {
    constructor(customId) { super(ComponentType.StringSelect, customId); }

    // [{label, value, description?, emoji?, default?}]
    setOptions(options) { this.data.options = options.map((o) => ({ ...o })); return this; }

    addOptions(...options) {
      this.data.options = [...(this.data.options ?? []), ...componentList(options).map((o) => ({ ...o }))];
      return this;
    }
  }

  class UserSelectMenuBuilder extends SelectMenuBuilderBase {
    constructor(customId) { super(ComponentType.UserSelect, customId); }
  }

  class RoleSelectMenuBuilder extends SelectMenuBuilderBase {
    constructor(customId) { super(ComponentType.RoleSelect, customId); }
  }

  class MentionableSelectMenuBuilder extends SelectMenuBuilderBase {
    constructor(customId) { super(ComponentType.MentionableSelect, customId); }
  }

  class ChannelSelectMenuBuilder extends SelectMenuBuilderBase {
    constructor(customId) { super(ComponentType.ChannelSelect, customId); }
  }

  // A text field in a modal (goes inside label()).
  class InputTextBuilder {
    #data;

    constructor(customId) { this.#data = { type: ComponentType.InputText, custom_id: customId }; }

    setCustomId(customId) { this.#data.custom_id = customId; return this; }
    setStyle(style) { this.#data.style = style; return this; }
    setMinLength(min) { this.#data.min_length = min; return this; }
    setMaxLength(max) { this.#data.max_length = max; return this; }
    setRequired(required = true) { this.#data.required = required; return this; }
    setValue(value) { this.#data.value = value; return this; }
    setPlaceholder(placeholder) { this.#data.placeholder = placeholder; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  class TextDisplayBuilder {
    #data;

    constructor(content) { this.#data = { type: ComponentType.TextDisplay, content }; }

    setContent(content) { this.#data.content = content; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  // Only valid as a section accessory.
  class ThumbnailBuilder {
    #data;

    constructor(url) { this.#data = { type: ComponentType.Thumbnail, media: { url } }; }

    setUrl(url) { this.#data.media = { url }; return this; }
    setDescription(description) { this.#data.description = description; return this; }
    setSpoiler(spoiler = true) { this.#data.spoiler = spoiler; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  // Text displays beside an accessory (a button or a thumbnail). Discord
  // requires the accessory: without one it is sent as null and rejected.
  class SectionBuilder {
    #components = [];
    #accessory;

    addComponents(...components) { this.#components.push(...componentList(components)); return this; }
    setComponents(components) { this.#components = [...components]; return this; }
    setAccessory(accessory) { this.#accessory = accessory; return this; }

    toJSON() {
      return {
        type: ComponentType.Section,
        components: this.#components.map(resolveComponent),
        accessory: this.#accessory ? resolveComponent(this.#accessory) : null,
      };
    }
  }

  class MediaGalleryBuilder {
    #items = [];

    addItem(url, options) {
      this.#items.push({ media: { url }, description: options?.description, spoiler: options?.spoiler });
      return this;
    }

    // [{media: {url}, description?, spoiler?}]
    setItems(items) {
      this.#items = items.map((item) => ({ ...item, media: { ...item.media } }));
      return this;
    }

    toJSON() {
      return {
        type: ComponentType.MediaGallery,
        items: this.#items.map((item) => ({ ...item, media: { ...item.media } })),
      };
    }
  }

  // An attached file shown inline, e.g. file('attachment://report.txt').
  class FileBuilder {
    #data;

    constructor(url) { this.#data = { type: ComponentType.File, file: { url } }; }

    setUrl(url) { this.#data.file = { url }; return this; }
    setSpoiler(spoiler = true) { this.#data.spoiler = spoiler; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  class SeparatorBuilder {
    #data;

    constructor(divider = true) { this.#data = { type: ComponentType.Separator, divider }; }

    setDivider(divider = true) { this.#data.divider = divider; return this; }
    // 1 | 2 | 'small' | 'large'
    setSpacing(spacing) { this.#data.spacing = spacing; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  class ContainerBuilder {
    #components = [];
    #accentColor;
    #spoiler;

    addComponents(...components) { this.#components.push(...componentList(components)); return this; }
    setComponents(components) { this.#components = [...components]; return this; }
    setAccentColor(color) { this.#accentColor = color; return this; }
    setSpoiler(spoiler = true) { this.#spoiler = spoiler; return this; }

    toJSON() {
      const data = { type: ComponentType.Container, components: this.#components.map(resolveComponent) };
      if (this.#accentColor !== undefined) data.accent_color = this.#accentColor;
      if (this.#spoiler !== undefined) data.spoiler = this.#spoiler;
      return data;
    }
  }

  // A labelled modal field: wraps a select, an inputText or a fileUpload.
  class LabelBuilder {
    #label;
    #description;
    #component;

    constructor(label) { this.#label = label; }

    setLabel(label) { this.#label = label; return this; }
    setDescription(description) { this.#description = description; return this; }
    setComponent(component) { this.#component = component; return this; }

    toJSON() {
      const data = {
        type: ComponentType.Label,
        label: this.#label,
        component: this.#component ? resolveComponent(this.#component) : null,
      };
      if (this.#description !== undefined) data.description = this.#description;
      return data;
    }
  }

  class FileUploadBuilder {
    #data;

    constructor(customId) { this.#data = { type: ComponentType.FileUpload, custom_id: customId }; }

    setCustomId(customId) { this.#data.custom_id = customId; return this; }
    setMinValues(min) { this.#data.min_values = min; return this; }
    setMaxValues(max) { this.#data.max_values = max; return this; }
    setRequired(required = true) { this.#data.required = required; return this; }

    toJSON() {
      return { ...this.#data };
    }
  }

  const actionRow = () => new ActionRowBuilder();
  const button = () => new ButtonBuilder();
  const stringSelect = (customId) => new StringSelectMenuBuilder(customId);
  const userSelect = (customId) => new UserSelectMenuBuilder(customId);
  const roleSelect = (customId) => new RoleSelectMenuBuilder(customId);
  const mentionableSelect = (customId) => new MentionableSelectMenuBuilder(customId);
  const channelSelect = (customId) => new ChannelSelectMenuBuilder(customId);
  const inputText = (customId) => new InputTextBuilder(customId);
  const textDisplay = (content) => new TextDisplayBuilder(content);
  const thumbnail = (url) => new ThumbnailBuilder(url);
  const section = () => new SectionBuilder();
  const mediaGallery = () => new MediaGalleryBuilder();
  const file = (url) => new FileBuilder(url);
  const separator = (divider = true) => new SeparatorBuilder(divider);
  const container = () => new ContainerBuilder();
  const label = (labelText) => new LabelBuilder(labelText);
  const fileUpload = (customId) => new FileUploadBuilder(customId);

  // ====================================================================
  // KV: per-guild named stores. A store must be created first (HTTP API or
  // `flora kv create-store`); values are strings, expiration is unix seconds.
  // ====================================================================

  // flora's typings allowed bigint for expiration/limit; JSON does not.
  function plainNumber(value) {
    return typeof value === "bigint" ? Number(value) : value;
  }

  class KvStore {
    #storeName;

    constructor(storeName) {
      this.#storeName = storeName;
    }

    // The value, or null if the key is missing or expired.
    async get(key) {
      return await op("op_kv_get", { storeName: this.#storeName, key });
    }

    // {value: null} if missing, else {value, metadata}.
    async getWithMetadata(key) {
      const result = await op("op_kv_get_with_metadata", { storeName: this.#storeName, key });
      if (result === null || result === undefined) return { value: null };
      if (Array.isArray(result)) {
        const [value, meta] = result;
        return { value, metadata: meta?.metadata };
      }
      return { value: result.value ?? null, metadata: result.metadata };
    }

    // options: {expiration?: unix seconds, metadata?: any JSON}. Replaces the
    // key's metadata (none given -> metadata removed).
    async set(key, value, options) {
      await op("op_kv_set", {
        storeName: this.#storeName,
        key,
        value,
        expiration: plainNumber(options?.expiration ?? undefined),
        metadata: options?.metadata ?? undefined,
      });
    }

    // Changes only the metadata; the key must exist. Keeps the expiration.
    async updateMetadata(key, metadata) {
      await op("op_kv_update_metadata", { storeName: this.#storeName, key, metadata: metadata ?? undefined });
    }

    // No error if the key does not exist.
    async delete(key) {
      await op("op_kv_delete", { storeName: this.#storeName, key });
    }

    // options: {prefix?, limit? (default 100, max 1000), cursor?}
    // -> {keys: [{name, expiration?, metadata?}], listComplete, cursor?}
    async list(options) {
      return await op("op_kv_list_keys", {
        storeName: this.#storeName,
        prefix: options?.prefix ?? undefined,
        limit: plainNumber(options?.limit ?? undefined),
        cursor: options?.cursor ?? undefined,
      });
    }

    // Not in the original flora: atomically add `by` (default 1) to an
    // integer value (missing key = 0); resolves with the new number.
    async incr(key, by = 1) {
      return await op("op_kv_incr", { storeName: this.#storeName, key, by: plainNumber(by) });
    }

    // Not in the original flora: set `value` only if the current value is
    // `expected` (null = the key must not exist); resolves true if it was set.
    async compareAndSet(key, expected, value, options) {
      return await op("op_kv_cas", {
        storeName: this.#storeName,
        key,
        expected,
        value,
        expiration: plainNumber(options?.expiration ?? undefined),
        metadata: options?.metadata ?? undefined,
      });
    }
  }

  function store(name) {
    return new KvStore(name);
  }

  const kv = { store };

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

  // ====================================================================
  // Publish: `flora.<name>` and a global of the same name.
  // ====================================================================

  const sdk = {
    prefix,
    slash,
    createBot,
    flattenCommands,
    handleSubcommand,
    flattenInteractionOptions,
    hasRole,
    getSubcommand,
    getSubcommandGroup,
    embed,
    EmbedBuilder,
    actionRow,
    button,
    stringSelect,
    userSelect,
    roleSelect,
    mentionableSelect,
    channelSelect,
    inputText,
    textDisplay,
    thumbnail,
    section,
    mediaGallery,
    file,
    separator,
    container,
    label,
    fileUpload,
    ActionRowBuilder,
    ButtonBuilder,
    SelectMenuBuilderBase,
    StringSelectMenuBuilder,
    UserSelectMenuBuilder,
    RoleSelectMenuBuilder,
    MentionableSelectMenuBuilder,
    ChannelSelectMenuBuilder,
    InputTextBuilder,
    TextDisplayBuilder,
    ThumbnailBuilder,
    SectionBuilder,
    MediaGalleryBuilder,
    FileBuilder,
    SeparatorBuilder,
    ContainerBuilder,
    LabelBuilder,
    FileUploadBuilder,
    ButtonStyle,
    ButtonStyles: ButtonStyle,
    ComponentType,
    InputTextStyle,
    InputTextStyles: InputTextStyle,
    MessageFlags,
    kv,
    store,
    KvStore,
    rest,
  };

  g.flora = sdk;
  for (const [name, value] of Object.entries(sdk)) {
    g[name] = value;
  }
})();
