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
//   storage     kv, store, KvStore        (from the kv plugin: flora_plugins/kv/kv.js)
//   REST        rest                      (from the discord_ops plugin: flora_plugins/discord_ops/rest.js)
//
// and the globals `cron` (cron plugin) and `secrets` (secrets plugin). Those four plugins, and any
// other, extend the SDK with
//
//   __floraProvide(name, value, { member = true })
//
// which makes `value` the global `name` and, with `member`, `flora[name]`. A name is provided once:
// a second provide of it, or of a name the SDK or the web globals define, throws a TypeError. Until a
// plugin provides one of flora's own names above, that name is a stand-in that throws an Error with
// code OP_UNAVAILABLE naming the plugin (`kv is not available: the kv plugin is disabled or not
// installed`), so a script written for flora says what is missing instead of failing obscurely.
// Sources that extend the SDK are registered with an order above 20 (flora's own use 50).
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
  // Publish: `flora.<name>` and a global of the same name; then what plugins provide.
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
  };

  // flora's names that other plugins provide: [plugin, member of `flora`, a namespace object or a function]
  const FROM_PLUGINS = {
    kv: ["kv", true, "object"],
    store: ["kv", true, "function"],
    KvStore: ["kv", true, "function"],
    rest: ["discord_ops", true, "object"],
    cron: ["cron", false, "function"],
    secrets: ["secrets", false, "object"],
  };

  function unavailable(what, name, plugin) {
    const err = new Error(`${what} is not available: the ${plugin} plugin is disabled or not installed`);
    err.code = "OP_UNAVAILABLE";
    return err;
  }

  // Throws at the first use, with the plugin's name; stays quiet where a runtime only looks (JSON,
  // promises, string conversion, Object.prototype's methods).
  function standIn(name, plugin, kind) {
    if (kind === "function") {
      return function unavailableName() {
        throw unavailable(name, name, plugin);
      };
    }
    return new Proxy(Object.freeze({}), {
      get(target, key) {
        if (typeof key !== "string" || key === "then" || key === "toJSON") return undefined;
        if (key in target) return target[key]; // toString, valueOf, hasOwnProperty...
        throw unavailable(`${name}.${key}`, name, plugin);
      },
    });
  }

  const standIns = new Set();
  for (const [name, [plugin, member, kind]] of Object.entries(FROM_PLUGINS)) {
    const value = standIn(name, plugin, kind);
    if (member) sdk[name] = value;
    standIns.add(name);
    g[name] = value;
  }

  g.flora = sdk;
  for (const [name, value] of Object.entries(sdk)) {
    g[name] = value;
  }

  const NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  function provide(name, value, options) {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new TypeError(`__floraProvide: invalid name ${JSON.stringify(name)}`);
    }
    if (!standIns.has(name) && name in g) {
      throw new TypeError(`__floraProvide: '${name}' is already provided`);
    }
    standIns.delete(name);
    const member = name in FROM_PLUGINS ? FROM_PLUGINS[name][1] : (options?.member ?? true);
    if (member) sdk[name] = value;
    g[name] = value;
  }
  Object.defineProperty(g, "__floraProvide", { value: provide, writable: false, configurable: false, enumerable: false });
})();
