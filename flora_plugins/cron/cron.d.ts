// Declarations of the cron plugin's script API (cron.js): the global `cron`.

/** What a cron handler receives (no reply/edit: there is no message). */
interface CronContext {
  name: string
  /** ISO 8601 time of this run. */
  scheduledAt: string
}

interface CronOptions {
  /** Skip a tick while the previous run is still going. */
  skipIfRunning?: boolean
  /** Run once after downtime if a tick was missed (not in the original flora). */
  /** After downtime: `'none'` (default) skips missed occurrences, `'latest'` runs the most recent one once. */
  catchUp?: 'none' | 'latest'
}

type CronHandler = (ctx: CronContext) => void | Promise<void>

/**
 * Run `handler` on a schedule: 5 fields `min hour day month weekday`, UTC.
 * Throws TypeError for a bad name/expression/handler; the returned promise
 * rejects if the runtime refuses the job (the error is logged too).
 */
declare function cron(name: string, cronExpr: string, handler: CronHandler, options?: CronOptions): Promise<void>

interface FloraErrorCodes {
  LIMIT_EXCEEDED: true
  ALREADY_EXISTS: true
}

declare module '@uwu/flora-sdk' {
  export import cron = globalThis.cron
  export import CronContext = globalThis.CronContext
  export import CronOptions = globalThis.CronOptions
}
