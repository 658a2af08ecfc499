// Declarations of the runtime's own globals (flora_core/runtime/glue.js and events.js): present in
// every guild isolate whatever plugins are enabled. Plugins add theirs (`flora types` assembles them).

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined }

/** Calls an op of a plugin with a JSON argument; rejects with a FloraError. */
declare function __floraOp(name: string, args?: unknown): Promise<any>
/** The guild this isolate runs for. */
declare var __floraGuildId: string | undefined

/** Subscribes `handler` to `event` (the SDK's `on` is this, typed). */
declare function __floraOn(event: string, handler: (ctx: any) => unknown): void
/** Drops the latest subscription of `handler` to `event`; true if there was one. */
declare function __floraOff(event: string, handler: (ctx: any) => unknown): boolean
/**
 * What handlers of events whose name starts with `prefix` receive: `make(payload, event)` (the longest
 * prefix wins; without one a handler receives `{ msg: payload }`). Defining a prefix twice throws.
 */
declare function __floraDefineContext(prefix: string, make: (payload: any, event: string) => unknown): void
/** Runs `event`'s handlers one after the other (the runtime calls it for every event). */
declare function __floraDispatch(event: string, payload: unknown): Promise<void>
declare var __floraHandlers: { [event: string]: Function[] }

/**
 * The codes ops reject with. Each plugin adds its own (interface merging), and a test keeps the whole
 * set equal to the codes the Python side raises.
 */
interface FloraErrorCodes {
  DISCORD_RATE_LIMITED: true
  DISCORD_HTTP_ERROR: true
  SCOPE_FORBIDDEN: true
  INVALID_INPUT: true
  OP_UNAVAILABLE: true
  INTERNAL: true
}

type FloraErrorCode = keyof FloraErrorCodes

/** What ops (and the SDK's ctx.reply/edit, rest methods…) reject with. */
interface FloraError extends Error {
  code?: FloraErrorCode
}
