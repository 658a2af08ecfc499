// Type declarations for flora scripts: the SDK (the `sdk` plugin's prelude.js and flora.js).
//
// Everything here is a global in the isolate (the SDK's values also members of `flora`): scripts use
// `createBot`, `embed`, `on`... without importing them. What other plugins add (`kv`, `rest`, `cron`,
// `secrets`, `fetch`, and third-party plugins' names) is declared by each of them, and the core declares
// its own globals (`__floraOp`, `__floraOn`...): `flora types -o flora.d.ts` writes the declarations of
// every enabled plugin into one file for your editor and `tsc`/`deno check`.
// `import { ... } from "@uwu/flora-sdk"` is declared too, for editors and type checks (each plugin
// adds its names to that module).
//
// Compatible with the original flora's global-types.d.ts; where the runtime
// really sends `null` (every optional payload field is present), the types
// say `| null`.

// ======================================================================
// Event payloads (camelCase keys; snowflakes are strings; timestamps ISO 8601)
// ======================================================================

interface EventUser {
  id: string
  username: string
  discriminator: number | null
  bot: boolean
}

interface EventMember {
  user: EventUser
  nick: string | null
  avatar: string | null
  roles: string[]
  joinedAt: string | null
  premiumSince: string | null
  deaf: boolean
  mute: boolean
  flags: number
  pending: boolean
  permissions: string | null
  communicationDisabledUntil: string | null
}

/** `messageCreate`; also `old`/`new` of `messageUpdate`. Includes the bot's own messages. */
interface EventMessage {
  id: string
  channelId: string
  guildId: string
  content: string
  author: EventUser
  member: EventMember | null
}

interface EventMessageUpdate {
  id: string
  channelId: string
  guildId: string
  content: string | null
  author: EventUser | null
  editedTimestamp: string | null
  /** The message before the edit, when it was cached. */
  old: EventMessage | null
  new: EventMessage | null
}

interface EventMessageDelete {
  id: string
  channelId: string
  guildId: string
}

interface EventMessageDeleteBulk {
  ids: string[]
  channelId: string
  guildId: string
}

interface EventReady {
  user: EventUser
  /** Always empty. */
  guildIds: string[]
}

/** One entry of Discord's (snake_case) option tree of a slash command. */
interface InteractionDataOption {
  name: string
  /** 1 subcommand, 2 subcommand group, 3 string, 4 integer, 5 boolean, 10 number, ... */
  type: number
  value?: string | number | boolean
  options?: InteractionDataOption[]
  focused?: boolean
}

/** Discord's raw command data. */
interface ApplicationCommandData {
  id?: string
  name: string
  type?: number
  options?: InteractionDataOption[]
  [key: string]: unknown
}

/** Discord's raw component data (snake_case). */
interface ComponentInteractionData {
  custom_id: string
  component_type: number
  /** Chosen values of a select menu. */
  values?: string[]
  [key: string]: unknown
}

/** Discord's raw modal data (snake_case). */
interface ModalSubmitData {
  custom_id: string
  components: JsonValue[]
  [key: string]: unknown
}

interface InteractionPayloadBase {
  interactionId: string
  interactionToken: string
  applicationId: string
  guildId: string
  channelId: string
  user: EventUser
  member: EventMember | null
  locale: string
  guildLocale: string | null
}

/** `interactionCreate`: a slash command. */
interface EventInteractionCreate extends InteractionPayloadBase {
  commandName: string
  data: ApplicationCommandData
}

/** `componentInteraction`: a button click or a select-menu choice. */
interface EventComponentInteraction extends InteractionPayloadBase {
  /** The message carrying the component. */
  messageId: string
  data: ComponentInteractionData
}

/** `modalSubmit`. */
interface EventModalSubmit extends InteractionPayloadBase {
  /** null when the modal was not opened from a message. */
  messageId: string | null
  data: ModalSubmitData
}

/** A custom emoji `{id, name, animated}` or a unicode one `{name}`. */
interface ReactionEmoji {
  id?: string | null
  name: string | null
  animated?: boolean
}

/** `reactionAdd`, `reactionRemove`, `reactionRemoveEmoji`. */
interface EventReaction {
  userId: string | null
  channelId: string
  messageId: string
  guildId: string
  emoji: ReactionEmoji
  burst: boolean
}

interface EventReactionRemoveAll {
  messageId: string
  channelId: string
  guildId: string
}

// ---- Events flora did not expose (same conventions: camelCase, string ids, null when absent) ----

/** `guildMemberAdd`, `guildMemberUpdate` (needs the GUILD_MEMBERS intent). */
interface EventGuildMember {
  guildId: string
  user: EventUser
  member: EventMember
}

/** `guildMemberRemove`. */
interface EventGuildMemberRemove {
  guildId: string
  user: EventUser
}

/** `channelCreate`, `channelUpdate`, `channelDelete`. */
interface EventChannel {
  id: string
  guildId: string
  /** Discord channel type (0 text, 2 voice, 4 category, 5 announcement, 13 stage, 15 forum, ...). */
  type: number
  name: string | null
  parentId: string | null
  position: number | null
  topic: string | null
  nsfw: boolean
  rateLimitPerUser: number | null
}

/** `threadCreate`, `threadUpdate`, `threadDelete` (a delete carries only id, guildId, parentId, type). */
interface EventThread {
  id: string
  guildId: string
  parentId: string | null
  type: number
  name: string | null
  ownerId: string | null
  archived: boolean
  locked: boolean
  messageCount: number | null
  memberCount: number | null
}

interface EventRoleData {
  id: string
  name: string
  color: number
  hoist: boolean
  position: number | null
  /** Permission bitfield as a decimal string. */
  permissions: string | null
  managed: boolean
  mentionable: boolean
}

/** `roleCreate`, `roleUpdate`. */
interface EventRole {
  guildId: string
  role: EventRoleData
}

/** `roleDelete`. */
interface EventRoleDelete {
  guildId: string
  roleId: string
}

/** `voiceStateUpdate`: `channelId` is null when the user left voice. */
interface EventVoiceState {
  guildId: string
  channelId: string | null
  userId: string
  member: EventMember | null
  sessionId: string | null
  deaf: boolean
  mute: boolean
  selfDeaf: boolean
  selfMute: boolean
  selfStream: boolean
  selfVideo: boolean
  suppress: boolean
}

// ======================================================================
// Replies, edits, embeds
// ======================================================================

interface RawEmbedMedia {
  url?: string
}

interface RawEmbedFooter {
  text?: string
  iconUrl?: string
}

interface RawEmbedAuthor {
  name?: string
  url?: string
  iconUrl?: string
}

interface RawEmbedField {
  name: string
  value: string
  inline?: boolean
}

interface RawEmbed {
  title?: string
  description?: string
  url?: string
  color?: number
  /** ISO 8601. */
  timestamp?: string
  footer?: RawEmbedFooter
  image?: RawEmbedMedia
  thumbnail?: RawEmbedMedia
  author?: RawEmbedAuthor
  fields?: RawEmbedField[]
}

type Embed = RawEmbed
type EmbedField = RawEmbedField

/** A file to upload: fetched from a URL by the server, or given as base64. */
type RawAttachment =
  | { Url: { url: string; filename?: string; description?: string } }
  | { Base64: { data: string; filename: string; description?: string } }

interface RawAllowedMentions {
  parse?: Array<'everyone' | 'users' | 'roles'>
  users?: string[]
  roles?: string[]
  repliedUser?: boolean
}

interface MessageReplyOptions {
  content?: string
  embeds?: RawEmbed[]
  attachments?: RawAttachment[]
  /** Builder `.toJSON()` output or raw component JSON. */
  components?: JsonValue[]
  tts?: boolean
  allowedMentions?: RawAllowedMentions
  /** Channel messages only: null = no reply reference; an id = reply to that message. */
  replyTo?: string | null
  /** Interaction replies only: visible to the user alone. */
  ephemeral?: boolean
  /** MessageFlags bits. */
  flags?: number
}

interface MessageEditOptions {
  content?: string
  embeds?: RawEmbed[]
  components?: JsonValue[]
  allowedMentions?: RawAllowedMentions
  flags?: number
}

// ======================================================================
// Handler contexts
// ======================================================================

interface BaseContext<TPayload> {
  /** The event payload. */
  msg: TPayload
  /**
   * Interactions: answers the interaction. Anything else: sends a message to
   * the channel, as a reply to the triggering message unless `replyTo: null`.
   */
  reply(content: string | MessageReplyOptions): Promise<void>
  /** Edits the triggering message (or the one carrying the component); throws without one. */
  edit(content: string | MessageEditOptions): Promise<void>
}

type SlashCommandOptions = { [name: string]: string | number | boolean | undefined }

type MessageContext = BaseContext<EventMessage>
type PrefixCommandContext = MessageContext & { args: string[] }
type MessageUpdateContext = BaseContext<EventMessageUpdate>
type MessageDeleteContext = BaseContext<EventMessageDelete>
type MessageDeleteBulkContext = BaseContext<EventMessageDeleteBulk>
/** A slash command run by createBot: `options` holds the chosen options by name. */
/** A modal to open: its inputs are `label(...).setComponent(inputText(...))` builders or raw JSON. */
interface ModalOptions {
  customId: string
  title: string
  components: Array<ComponentLike>
}

/** Beyond flora: what every interaction context can also do. */
interface InteractionAnswers {
  /** Answers with a modal (must be the first answer; not after an automatic defer). */
  showModal(modal: ModalOptions): Promise<void>
  /** Answers by updating the message that carries the component (callback type 7). */
  update(content: string | MessageReplyOptions): Promise<void>
}

type InteractionContext = BaseContext<EventInteractionCreate> & InteractionAnswers & { options: SlashCommandOptions }
type ComponentInteractionContext = BaseContext<EventComponentInteraction> & InteractionAnswers
type ModalSubmitContext = BaseContext<EventModalSubmit> & InteractionAnswers
type ReactionContext = BaseContext<EventReaction>
type ReactionRemoveAllContext = BaseContext<EventReactionRemoveAll>
type ReadyContext = BaseContext<EventReady>
type GuildMemberContext = BaseContext<EventGuildMember>
type GuildMemberRemoveContext = BaseContext<EventGuildMemberRemove>
type ChannelContext = BaseContext<EventChannel>
type ThreadContext = BaseContext<EventThread>
type RoleContext = BaseContext<EventRole>
type RoleDeleteContext = BaseContext<EventRoleDelete>
type VoiceStateContext = BaseContext<EventVoiceState>

interface FloraEventMap {
  ready: ReadyContext
  messageCreate: MessageContext
  messageUpdate: MessageUpdateContext
  messageDelete: MessageDeleteContext
  messageDeleteBulk: MessageDeleteBulkContext
  /** `options` is only filled in for commands routed by createBot. */
  interactionCreate: InteractionContext
  componentInteraction: ComponentInteractionContext
  modalSubmit: ModalSubmitContext
  reactionAdd: ReactionContext
  reactionRemove: ReactionContext
  reactionRemoveEmoji: ReactionContext
  reactionRemoveAll: ReactionRemoveAllContext
  // Beyond flora:
  guildMemberAdd: GuildMemberContext
  guildMemberUpdate: GuildMemberContext
  guildMemberRemove: GuildMemberRemoveContext
  channelCreate: ChannelContext
  channelUpdate: ChannelContext
  channelDelete: ChannelContext
  threadCreate: ThreadContext
  threadUpdate: ThreadContext
  threadDelete: ThreadContext
  roleCreate: RoleContext
  roleUpdate: RoleContext
  roleDelete: RoleDeleteContext
  voiceStateUpdate: VoiceStateContext
}

type FloraEventName = keyof FloraEventMap
type FloraEventHandler<E extends keyof FloraEventMap> = (ctx: FloraEventMap[E]) => void | Promise<void>

interface Console {
  log(...data: any[]): void
  info(...data: any[]): void
  warn(...data: any[]): void
  error(...data: any[]): void
  debug(...data: any[]): void
}

// ======================================================================
// Runtime globals (the prelude)
// ======================================================================

/** Run `handler` for every `event` in this guild. Handlers run one after another. */
declare function on<E extends keyof FloraEventMap>(event: E, handler: FloraEventHandler<E>): void

/** Writes to this guild's log (`flora logs`). */
declare var console: Console

/** Replaces all of this guild's slash commands (createBot does this for you). */
declare function registerSlashCommands(commands: FlattenedSlashCommand[]): Promise<void> | undefined

// ======================================================================
// Commands
// ======================================================================

interface Command {
  name: string
  description?: string
  run: (ctx: PrefixCommandContext) => Promise<void> | void
}

type SlashCommandOptionType = 'string' | 'integer' | 'number' | 'boolean' | 'subcommand' | 'subcommand_group'

interface SlashCommandOption {
  name: string
  description: string
  /** Defaults to 'string'. */
  type?: SlashCommandOptionType
  required?: boolean
  options?: SlashCommandOption[]
}

interface SlashSubcommand {
  name: string
  description: string
  type?: 'subcommand'
  options?: SlashCommandOption[]
  run: (ctx: InteractionContext) => Promise<void> | void
}

/** `/command group subcommand` (routing of groups is not in the original flora). */
interface SlashSubcommandGroup {
  name: string
  description: string
  type: 'subcommand_group'
  subcommands: SlashSubcommand[]
}

interface SlashCommand {
  name: string
  description: string
  options?: SlashCommandOption[]
  /** When present, the command itself is not run: the chosen subcommand is. */
  subcommands?: Array<SlashSubcommand | SlashSubcommandGroup>
  run?: (ctx: InteractionContext) => Promise<void> | void
}

interface CreateOptions {
  /** Default '!'. Matched exactly (case-sensitive) at the start of the trimmed message. */
  prefix?: string
  commands?: Command[]
  /** Used when `commands` is not given. */
  prefixCommands?: Command[]
  slashCommands?: SlashCommand[]
}

/** A command as registered with Discord. */
interface FlattenedSlashCommand {
  name: string
  description: string
  options?: SlashCommandOption[]
}

type SubcommandMap = {
  [command: string]: {
    [subcommandOrGroup: string]:
      | ((ctx: InteractionContext) => Promise<void> | void)
      | { [subcommand: string]: (ctx: InteractionContext) => Promise<void> | void }
  }
}

declare function prefix(command: Command): Command
declare function slash(command: SlashCommand): SlashCommand
/** Routes messages and slash commands to `options`' commands and registers the slash commands. Only the first call counts. */
declare function createBot(options: CreateOptions): void
declare function flattenCommands(commands: SlashCommand[]): FlattenedSlashCommand[]
declare function handleSubcommand(ctx: BaseContext<EventInteractionCreate>, command: SlashCommand): Promise<void>
declare function flattenInteractionOptions(options: InteractionDataOption[]): { [name: string]: any }

// ======================================================================
// Helpers
// ======================================================================

declare function hasRole(ctx: { msg: { member?: { roles?: string[] } | null } }, roleId: string): boolean
/** Name of the chosen subcommand (the group's name when a group was used). */
declare function getSubcommand(ctx: { msg: { data?: unknown } }): string | undefined
declare function getSubcommandGroup(ctx: { msg: { data?: unknown } }): string | undefined

// ======================================================================
// Embeds
// ======================================================================

declare class EmbedBuilder {
  constructor(initial?: RawEmbed)
  setTitle(title: string): this
  setDescription(description: string): this
  setUrl(url: string): this
  setColor(color: number): this
  setTimestamp(timestamp: string): this
  setFooter(text: string, iconUrl?: string): this
  setImage(url: string): this
  setThumbnail(url: string): this
  setAuthor(name?: string, options?: { url?: string; iconUrl?: string }): this
  addField(name: string, value: string, inline?: boolean): this
  addFields(fields: RawEmbedField[]): this
  setFields(fields: RawEmbedField[]): this
  toJSON(): RawEmbed
}

declare function embed(initial?: RawEmbed): EmbedBuilder

// ======================================================================
// Components
// ======================================================================

type ComponentJson = { type: number; [key: string]: JsonValue | undefined }
type ComponentBuilder = { toJSON(): ComponentJson }
type ComponentLike = ComponentJson | ComponentBuilder
/** A unicode emoji, "<:name:id>", or {id, name, animated}. */
type EmojiLike = JsonValue

interface SelectDefaultValue {
  id: string
  type: 'user' | 'role' | 'channel'
}

interface SelectOption {
  label: string
  value: string
  description?: string
  emoji?: EmojiLike
  default?: boolean
}

interface MediaItemEntry {
  media: { url: string }
  description?: string
  spoiler?: boolean
}

declare class ActionRowBuilder {
  addComponents(...components: Array<ComponentLike | ComponentLike[]>): this
  setComponents(components: ComponentLike[]): this
  toJSON(): ComponentJson
}

declare class ButtonBuilder {
  setStyle(style: number): this
  setCustomId(customId: string): this
  /** Makes a link button (style 5). */
  setUrl(url: string): this
  /** Makes a premium button (style 6). */
  setSkuId(skuId: string): this
  setLabel(label: string): this
  setEmoji(emoji: EmojiLike): this
  setDisabled(disabled?: boolean): this
  toJSON(): ComponentJson
}

declare class SelectMenuBuilderBase {
  constructor(type: number, customId: string)
  data: ComponentJson
  setCustomId(customId: string): this
  setPlaceholder(placeholder: string): this
  setMinValues(min: number): this
  setMaxValues(max: number): this
  setRequired(required?: boolean): this
  setDisabled(disabled?: boolean): this
  setChannelTypes(types: number[]): this
  setDefaultValues(values: SelectDefaultValue[]): this
  setDefaultUsers(ids: string[]): this
  setDefaultRoles(ids: string[]): this
  setDefaultChannels(ids: string[]): this
  addDefaultUser(id: string): this
  addDefaultRole(id: string): this
  addDefaultChannel(id: string): this
  addDefaultValue(id: string, type: 'user' | 'role' | 'channel'): this
  toJSON(): ComponentJson
}

declare class StringSelectMenuBuilder extends SelectMenuBuilderBase {
  constructor(customId: string)
  setOptions(options: SelectOption[]): this
  addOptions(...options: Array<SelectOption | SelectOption[]>): this
}

declare class UserSelectMenuBuilder extends SelectMenuBuilderBase {
  constructor(customId: string)
}

declare class RoleSelectMenuBuilder extends SelectMenuBuilderBase {
  constructor(customId: string)
}

declare class MentionableSelectMenuBuilder extends SelectMenuBuilderBase {
  constructor(customId: string)
}

declare class ChannelSelectMenuBuilder extends SelectMenuBuilderBase {
  constructor(customId: string)
}

declare class InputTextBuilder {
  constructor(customId: string)
  setCustomId(customId: string): this
  setStyle(style: number): this
  setMinLength(min: number): this
  setMaxLength(max: number): this
  setRequired(required?: boolean): this
  setValue(value: string): this
  setPlaceholder(placeholder: string): this
  toJSON(): ComponentJson
}

declare class TextDisplayBuilder {
  constructor(content: string)
  setContent(content: string): this
  toJSON(): ComponentJson
}

declare class ThumbnailBuilder {
  constructor(url: string)
  setUrl(url: string): this
  setDescription(description: string): this
  setSpoiler(spoiler?: boolean): this
  toJSON(): ComponentJson
}

declare class SectionBuilder {
  addComponents(...components: Array<ComponentLike | ComponentLike[]>): this
  setComponents(components: ComponentLike[]): this
  /** Required by Discord: a button or a thumbnail. */
  setAccessory(accessory: ComponentLike): this
  toJSON(): ComponentJson
}

declare class MediaGalleryBuilder {
  addItem(url: string, options?: { description?: string; spoiler?: boolean }): this
  setItems(items: MediaItemEntry[]): this
  toJSON(): ComponentJson
}

declare class FileBuilder {
  constructor(url: string)
  setUrl(url: string): this
  setSpoiler(spoiler?: boolean): this
  toJSON(): ComponentJson
}

declare class SeparatorBuilder {
  constructor(divider?: boolean)
  setDivider(divider?: boolean): this
  setSpacing(spacing: number | 'small' | 'large'): this
  toJSON(): ComponentJson
}

declare class ContainerBuilder {
  addComponents(...components: Array<ComponentLike | ComponentLike[]>): this
  setComponents(components: ComponentLike[]): this
  setAccentColor(color: number): this
  setSpoiler(spoiler?: boolean): this
  toJSON(): ComponentJson
}

declare class LabelBuilder {
  constructor(label: string)
  setLabel(label: string): this
  setDescription(description: string): this
  /** A select menu, an inputText or a fileUpload. */
  setComponent(component: ComponentLike): this
  toJSON(): ComponentJson
}

declare class FileUploadBuilder {
  constructor(customId: string)
  setCustomId(customId: string): this
  setMinValues(min: number): this
  setMaxValues(max: number): this
  setRequired(required?: boolean): this
  toJSON(): ComponentJson
}

declare const actionRow: () => ActionRowBuilder
declare const button: () => ButtonBuilder
declare const stringSelect: (customId: string) => StringSelectMenuBuilder
declare const userSelect: (customId: string) => UserSelectMenuBuilder
declare const roleSelect: (customId: string) => RoleSelectMenuBuilder
declare const mentionableSelect: (customId: string) => MentionableSelectMenuBuilder
declare const channelSelect: (customId: string) => ChannelSelectMenuBuilder
declare const inputText: (customId: string) => InputTextBuilder
declare const textDisplay: (content: string) => TextDisplayBuilder
declare const thumbnail: (url: string) => ThumbnailBuilder
declare const section: () => SectionBuilder
declare const mediaGallery: () => MediaGalleryBuilder
declare const file: (url: string) => FileBuilder
declare const separator: (divider?: boolean) => SeparatorBuilder
declare const container: () => ContainerBuilder
declare const label: (labelText: string) => LabelBuilder
declare const fileUpload: (customId: string) => FileUploadBuilder

// ======================================================================
// Constants
// ======================================================================

type ButtonStyle = 1 | 2 | 3 | 4
declare const ButtonStyle: { readonly Primary: 1; readonly Secondary: 2; readonly Success: 3; readonly Danger: 4 }
declare const ButtonStyles: typeof ButtonStyle

type ComponentType = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 17 | 18 | 19
declare const ComponentType: {
  readonly ActionRow: 1
  readonly Button: 2
  readonly StringSelect: 3
  readonly InputText: 4
  readonly UserSelect: 5
  readonly RoleSelect: 6
  readonly MentionableSelect: 7
  readonly ChannelSelect: 8
  readonly Section: 9
  readonly TextDisplay: 10
  readonly Thumbnail: 11
  readonly MediaGallery: 12
  readonly File: 13
  readonly Separator: 14
  readonly Container: 17
  readonly Label: 18
  readonly FileUpload: 19
}

type InputTextStyle = 1 | 2
declare const InputTextStyle: { readonly Short: 1; readonly Paragraph: 2 }
declare const InputTextStyles: typeof InputTextStyle

type MessageFlags = number
declare const MessageFlags: {
  readonly CROSSPOSTED: 1
  readonly IS_CROSSPOST: 2
  readonly SUPPRESS_EMBEDS: 4
  readonly SOURCE_MESSAGE_DELETED: 8
  readonly URGENT: 16
  readonly HAS_THREAD: 32
  readonly EPHEMERAL: 64
  readonly LOADING: 128
  readonly FAILED_TO_MENTION_SOME_ROLES_IN_THREAD: 256
  readonly SUPPRESS_NOTIFICATIONS: 4096
  readonly IS_VOICE_MESSAGE: 8192
  readonly IS_COMPONENTS_V2: 32768
}

// ======================================================================
// The `flora` namespace object (same values as the globals)
// ======================================================================

interface FloraSdk {
  prefix: typeof prefix
  slash: typeof slash
  createBot: typeof createBot
  flattenCommands: typeof flattenCommands
  handleSubcommand: typeof handleSubcommand
  flattenInteractionOptions: typeof flattenInteractionOptions
  hasRole: typeof hasRole
  getSubcommand: typeof getSubcommand
  getSubcommandGroup: typeof getSubcommandGroup
  embed: typeof embed
  EmbedBuilder: typeof EmbedBuilder
  actionRow: typeof actionRow
  button: typeof button
  stringSelect: typeof stringSelect
  userSelect: typeof userSelect
  roleSelect: typeof roleSelect
  mentionableSelect: typeof mentionableSelect
  channelSelect: typeof channelSelect
  inputText: typeof inputText
  textDisplay: typeof textDisplay
  thumbnail: typeof thumbnail
  section: typeof section
  mediaGallery: typeof mediaGallery
  file: typeof file
  separator: typeof separator
  container: typeof container
  label: typeof label
  fileUpload: typeof fileUpload
  ActionRowBuilder: typeof ActionRowBuilder
  ButtonBuilder: typeof ButtonBuilder
  SelectMenuBuilderBase: typeof SelectMenuBuilderBase
  StringSelectMenuBuilder: typeof StringSelectMenuBuilder
  UserSelectMenuBuilder: typeof UserSelectMenuBuilder
  RoleSelectMenuBuilder: typeof RoleSelectMenuBuilder
  MentionableSelectMenuBuilder: typeof MentionableSelectMenuBuilder
  ChannelSelectMenuBuilder: typeof ChannelSelectMenuBuilder
  InputTextBuilder: typeof InputTextBuilder
  TextDisplayBuilder: typeof TextDisplayBuilder
  ThumbnailBuilder: typeof ThumbnailBuilder
  SectionBuilder: typeof SectionBuilder
  MediaGalleryBuilder: typeof MediaGalleryBuilder
  FileBuilder: typeof FileBuilder
  SeparatorBuilder: typeof SeparatorBuilder
  ContainerBuilder: typeof ContainerBuilder
  LabelBuilder: typeof LabelBuilder
  FileUploadBuilder: typeof FileUploadBuilder
  ButtonStyle: typeof ButtonStyle
  ButtonStyles: typeof ButtonStyles
  ComponentType: typeof ComponentType
  InputTextStyle: typeof InputTextStyle
  InputTextStyles: typeof InputTextStyles
  MessageFlags: typeof MessageFlags
}

declare const flora: FloraSdk

// ======================================================================
// The same names as a module, for `import { embed } from "@uwu/flora-sdk"`
// (types only: at run time the SDK is already global).
// ======================================================================

declare module '@uwu/flora-sdk' {
  // runtime globals
  export import on = globalThis.on
  export import registerSlashCommands = globalThis.registerSlashCommands
  // SDK values
  export import prefix = globalThis.prefix
  export import slash = globalThis.slash
  export import createBot = globalThis.createBot
  export import flattenCommands = globalThis.flattenCommands
  export import handleSubcommand = globalThis.handleSubcommand
  export import flattenInteractionOptions = globalThis.flattenInteractionOptions
  export import hasRole = globalThis.hasRole
  export import getSubcommand = globalThis.getSubcommand
  export import getSubcommandGroup = globalThis.getSubcommandGroup
  export import embed = globalThis.embed
  export import EmbedBuilder = globalThis.EmbedBuilder
  export import actionRow = globalThis.actionRow
  export import button = globalThis.button
  export import stringSelect = globalThis.stringSelect
  export import userSelect = globalThis.userSelect
  export import roleSelect = globalThis.roleSelect
  export import mentionableSelect = globalThis.mentionableSelect
  export import channelSelect = globalThis.channelSelect
  export import inputText = globalThis.inputText
  export import textDisplay = globalThis.textDisplay
  export import thumbnail = globalThis.thumbnail
  export import section = globalThis.section
  export import mediaGallery = globalThis.mediaGallery
  export import file = globalThis.file
  export import separator = globalThis.separator
  export import container = globalThis.container
  export import label = globalThis.label
  export import fileUpload = globalThis.fileUpload
  export import ActionRowBuilder = globalThis.ActionRowBuilder
  export import ButtonBuilder = globalThis.ButtonBuilder
  export import SelectMenuBuilderBase = globalThis.SelectMenuBuilderBase
  export import StringSelectMenuBuilder = globalThis.StringSelectMenuBuilder
  export import UserSelectMenuBuilder = globalThis.UserSelectMenuBuilder
  export import RoleSelectMenuBuilder = globalThis.RoleSelectMenuBuilder
  export import MentionableSelectMenuBuilder = globalThis.MentionableSelectMenuBuilder
  export import ChannelSelectMenuBuilder = globalThis.ChannelSelectMenuBuilder
  export import InputTextBuilder = globalThis.InputTextBuilder
  export import TextDisplayBuilder = globalThis.TextDisplayBuilder
  export import ThumbnailBuilder = globalThis.ThumbnailBuilder
  export import SectionBuilder = globalThis.SectionBuilder
  export import MediaGalleryBuilder = globalThis.MediaGalleryBuilder
  export import FileBuilder = globalThis.FileBuilder
  export import SeparatorBuilder = globalThis.SeparatorBuilder
  export import ContainerBuilder = globalThis.ContainerBuilder
  export import LabelBuilder = globalThis.LabelBuilder
  export import FileUploadBuilder = globalThis.FileUploadBuilder
  export import ButtonStyle = globalThis.ButtonStyle
  export import ButtonStyles = globalThis.ButtonStyles
  export import ComponentType = globalThis.ComponentType
  export import InputTextStyle = globalThis.InputTextStyle
  export import InputTextStyles = globalThis.InputTextStyles
  export import MessageFlags = globalThis.MessageFlags
  // types
  export import JsonValue = globalThis.JsonValue
  export import EventUser = globalThis.EventUser
  export import EventMember = globalThis.EventMember
  export import EventMessage = globalThis.EventMessage
  export import EventMessageUpdate = globalThis.EventMessageUpdate
  export import EventMessageDelete = globalThis.EventMessageDelete
  export import EventMessageDeleteBulk = globalThis.EventMessageDeleteBulk
  export import EventReady = globalThis.EventReady
  export import EventInteractionCreate = globalThis.EventInteractionCreate
  export import EventComponentInteraction = globalThis.EventComponentInteraction
  export import EventModalSubmit = globalThis.EventModalSubmit
  export import EventReaction = globalThis.EventReaction
  export import EventReactionRemoveAll = globalThis.EventReactionRemoveAll
  export import EventGuildMember = globalThis.EventGuildMember
  export import EventGuildMemberRemove = globalThis.EventGuildMemberRemove
  export import EventChannel = globalThis.EventChannel
  export import EventThread = globalThis.EventThread
  export import EventRoleData = globalThis.EventRoleData
  export import EventRole = globalThis.EventRole
  export import EventRoleDelete = globalThis.EventRoleDelete
  export import EventVoiceState = globalThis.EventVoiceState
  export import InteractionDataOption = globalThis.InteractionDataOption
  export import BaseContext = globalThis.BaseContext
  export import MessageContext = globalThis.MessageContext
  export import PrefixCommandContext = globalThis.PrefixCommandContext
  export import MessageUpdateContext = globalThis.MessageUpdateContext
  export import MessageDeleteContext = globalThis.MessageDeleteContext
  export import MessageDeleteBulkContext = globalThis.MessageDeleteBulkContext
  export import InteractionContext = globalThis.InteractionContext
  export import ComponentInteractionContext = globalThis.ComponentInteractionContext
  export import ModalSubmitContext = globalThis.ModalSubmitContext
  export import ReactionContext = globalThis.ReactionContext
  export import ReactionRemoveAllContext = globalThis.ReactionRemoveAllContext
  export import FloraEventMap = globalThis.FloraEventMap
  export import MessageReplyOptions = globalThis.MessageReplyOptions
  export import MessageEditOptions = globalThis.MessageEditOptions
  export import RawEmbed = globalThis.RawEmbed
  export import Embed = globalThis.Embed
  export import EmbedField = globalThis.EmbedField
  export import Command = globalThis.Command
  export import SlashCommand = globalThis.SlashCommand
  export import SlashCommandOption = globalThis.SlashCommandOption
  export import SlashSubcommand = globalThis.SlashSubcommand
  export import SlashSubcommandGroup = globalThis.SlashSubcommandGroup
  export import SlashCommandOptions = globalThis.SlashCommandOptions
  export import CreateOptions = globalThis.CreateOptions
  export import FlattenedSlashCommand = globalThis.FlattenedSlashCommand
  export import ComponentJson = globalThis.ComponentJson
  export import ComponentLike = globalThis.ComponentLike
  export import FloraError = globalThis.FloraError
}
