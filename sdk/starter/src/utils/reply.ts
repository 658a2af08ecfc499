// Text helpers for the starter bot.

/** "pong", or "pong (a b c)" when the command had arguments. */
export function pongText(args: string[]): string {
  const extra = args.filter((word) => word.length > 0).join(' ')
  return extra ? `pong (${extra})` : 'pong'
}

/** The greeting /hello answers with; nobody named means the whole world. */
export function greeting(name: unknown): string {
  const who = typeof name === 'string' && name.length > 0 ? name : 'world'
  return `Hello, ${who}!`
}
