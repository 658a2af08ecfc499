// Declarations of the discord_ops plugin's script API (rest.js): `rest`, a global and a member of
// `flora`, one method per Discord op (each one Discord call; failures carry a `code`).

interface RawMessageBody {
  content?: string
  embeds?: RawEmbed[]
  attachments?: RawAttachment[]
  components?: JsonValue[]
  tts?: boolean
  allowedMentions?: RawAllowedMentions
  flags?: number
}

interface RawSendMessage extends RawMessageBody {
  channelId: string
  /** Reply to this message. */
  replyTo?: string
  /** Deprecated alias of replyTo. */
  messageId?: string
}

interface RawEditMessage {
  channelId: string
  messageId: string
  content?: string
  embeds?: RawEmbed[]
  components?: JsonValue[]
  allowedMentions?: RawAllowedMentions
  flags?: number
}

interface RawMessageRef {
  channelId: string
  messageId: string
}

type RawDeleteMessage = RawMessageRef
type RawPinMessage = RawMessageRef
type RawCrosspostMessage = RawMessageRef
type RawFetchMessage = RawMessageRef

interface RawBulkDeleteMessages {
  channelId: string
  messageIds: string[]
}

interface RawFetchMessages {
  channelId: string
  limit?: number
  before?: string
  after?: string
  around?: string
}

interface RawReaction extends RawMessageRef {
  /** A unicode emoji or "name:id". */
  emoji: string
  userId?: string
}

interface RawClearReactions extends RawMessageRef {
  emoji?: string
}

interface RawInteractionResponse extends RawMessageBody {
  interactionId: string
  token: string
  ephemeral?: boolean
}

interface RawDeferInteractionResponse {
  interactionId: string
  token: string
  ephemeral?: boolean
}

interface RawUpdateInteractionResponse extends RawMessageBody {
  interactionId: string
  token: string
}

interface RawEditInteractionResponse {
  token: string
  content?: string
  embeds?: RawEmbed[]
  attachments?: RawAttachment[]
  components?: JsonValue[]
  allowedMentions?: RawAllowedMentions
  flags?: number
}

interface RawDeleteInteractionResponse {
  token: string
}

interface RawFollowupMessage extends RawMessageBody {
  token: string
  /** Required to edit a followup. */
  messageId?: string
}

interface RawDeleteFollowupMessage {
  token: string
  messageId: string
}

interface RawSlashCommand {
  name: string
  description?: string
  options?: SlashCommandOption[]
}

interface RawGuildId {
  guildId: string
}

interface RawUpsertGuildCommands extends RawGuildId {
  commands: RawSlashCommand[]
}

interface RawCreateGuildCommand extends RawGuildId {
  command: RawSlashCommand
}

interface RawEditGuildCommand extends RawGuildId {
  commandId: string
  command: RawSlashCommand
}

interface RawGetGuildCommand extends RawGuildId {
  commandId: string
}

type RawDeleteGuildCommand = RawGetGuildCommand

interface RawCommandPermissions extends RawGuildId {
  commandId: string
  permissions: JsonValue
}

interface RawGuildUser extends RawGuildId {
  userId: string
  reason?: string
}

interface RawBanMember extends RawGuildUser {
  deleteMessageSeconds?: number
}

interface RawMemberRole extends RawGuildUser {
  roleId: string
}

interface RawEditMember extends RawGuildUser {
  /** Discord's JSON body (snake_case), e.g. {nick, roles, communication_disabled_until}. */
  payload: JsonValue
}

interface RawEditCurrentMember extends RawGuildId {
  payload: JsonValue
  reason?: string
}

interface RawCreateChannel extends RawGuildId {
  payload: JsonValue
  reason?: string
}

interface RawEditChannel {
  channelId: string
  payload: JsonValue
  reason?: string
}

interface RawDeleteChannel {
  channelId: string
  reason?: string
}

interface RawCreateThread {
  channelId: string
  payload: JsonValue
  reason?: string
}

interface RawCreateThreadFromMessage extends RawCreateThread {
  messageId: string
}

interface RawThreadId {
  threadId: string
}

interface RawThreadMember extends RawThreadId {
  userId: string
}

interface RawExecuteWebhook extends RawMessageBody {
  webhookId: string
  token: string
  /** Wait for the message and return it. */
  wait?: boolean
  threadId?: string
  withComponents?: boolean
  username?: string
  avatarUrl?: string
  threadName?: string
}

interface RawEditWebhook {
  webhookId: string
  token?: string
  payload: JsonValue
  reason?: string
}

interface RawDeleteWebhook {
  webhookId: string
  token?: string
  reason?: string
}

interface FloraRest {
  sendMessage(args: RawSendMessage): Promise<JsonValue>
  editMessage(args: RawEditMessage): Promise<void>
  deleteMessage(args: RawDeleteMessage): Promise<void>
  bulkDeleteMessages(args: RawBulkDeleteMessages): Promise<void>
  pinMessage(args: RawPinMessage): Promise<void>
  unpinMessage(args: RawPinMessage): Promise<void>
  crosspostMessage(args: RawCrosspostMessage): Promise<JsonValue>
  fetchMessage(args: RawFetchMessage): Promise<JsonValue>
  fetchMessages(args: RawFetchMessages): Promise<JsonValue[]>
  addReaction(args: RawReaction): Promise<void>
  removeReaction(args: RawReaction): Promise<void>
  clearReactions(args: RawClearReactions): Promise<void>

  sendInteractionResponse(args: RawInteractionResponse): Promise<void>
  deferInteractionResponse(args: RawDeferInteractionResponse): Promise<void>
  updateInteractionResponse(args: RawUpdateInteractionResponse): Promise<void>
  /** Beyond flora: opens a modal (interaction callback type 9). */
  showModal(args: { interactionId: string; token: string; customId: string; title: string; components: Array<ComponentLike> }): Promise<void>
  editOriginalInteractionResponse(args: RawEditInteractionResponse): Promise<JsonValue>
  deleteOriginalInteractionResponse(args: RawDeleteInteractionResponse): Promise<void>
  createFollowupMessage(args: RawFollowupMessage): Promise<JsonValue>
  editFollowupMessage(args: RawFollowupMessage): Promise<JsonValue>
  deleteFollowupMessage(args: RawDeleteFollowupMessage): Promise<void>

  upsertGuildCommands(args: RawUpsertGuildCommands): Promise<void>
  createGuildCommand(args: RawCreateGuildCommand): Promise<JsonValue>
  editGuildCommand(args: RawEditGuildCommand): Promise<JsonValue>
  deleteGuildCommand(args: RawDeleteGuildCommand): Promise<void>
  getGuildCommands(args: RawGuildId): Promise<JsonValue[]>
  getGuildCommand(args: RawGetGuildCommand): Promise<JsonValue>
  editGuildCommandPermissions(args: RawCommandPermissions): Promise<JsonValue>
  getGuildCommandsPermissions(args: RawGuildId): Promise<JsonValue[]>
  getGuildCommandPermissions(args: RawGetGuildCommand): Promise<JsonValue>

  kickMember(args: RawGuildUser): Promise<void>
  banMember(args: RawBanMember): Promise<void>
  unbanMember(args: RawGuildUser): Promise<void>
  addMemberRole(args: RawMemberRole): Promise<void>
  removeMemberRole(args: RawMemberRole): Promise<void>
  editMember(args: RawEditMember): Promise<JsonValue>
  editCurrentMember(args: RawEditCurrentMember): Promise<JsonValue>

  createChannel(args: RawCreateChannel): Promise<JsonValue>
  editChannel(args: RawEditChannel): Promise<JsonValue>
  deleteChannel(args: RawDeleteChannel): Promise<JsonValue>
  createThread(args: RawCreateThread): Promise<JsonValue>
  createThreadFromMessage(args: RawCreateThreadFromMessage): Promise<JsonValue>
  joinThread(args: RawThreadId): Promise<void>
  leaveThread(args: RawThreadId): Promise<void>
  addThreadMember(args: RawThreadMember): Promise<void>
  removeThreadMember(args: RawThreadMember): Promise<void>

  executeWebhook(args: RawExecuteWebhook): Promise<JsonValue | null>
  editWebhook(args: RawEditWebhook): Promise<JsonValue>
  deleteWebhook(args: RawDeleteWebhook): Promise<void>
}

declare const rest: FloraRest

interface FloraSdk {
  rest: typeof rest
}

declare module '@uwu/flora-sdk' {
  export import rest = globalThis.rest
}
