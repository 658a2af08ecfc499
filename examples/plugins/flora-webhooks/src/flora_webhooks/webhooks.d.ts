/** The `webhook` event of flora-webhooks: `on("webhook", (ctx) => { ctx.msg.name; ctx.msg.body })`. */
interface FloraWebhookEvent {
  guild_id: string;
  /** The webhook's name, as in POST /api/hooks/{guild_id}/{name}. */
  name: string;
  /** The request body: parsed when it was JSON, else the text. */
  body: unknown;
  /** The allowed request headers, lower-case (content-type, user-agent, x-github-event, …). */
  headers: Record<string, string>;
  /** Delivery id and when it was received (ms since the epoch). */
  id: number;
  receivedAt: number;
}

/** `on("webhook", …)` is typed: its handler gets the SDK's context with this payload as `ctx.msg`. */
interface FloraEventMap {
  webhook: BaseContext<FloraWebhookEvent>
}
