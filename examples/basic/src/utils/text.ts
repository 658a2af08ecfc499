// Small text helpers shared by the commands.

/** Joins words with single spaces, or gives `fallback` when there are none. */
export function joinWords(words: readonly string[], fallback = ''): string {
  const text = words.filter((word) => word.length > 0).join(' ')
  return text.length > 0 ? text : fallback
}

/** Reads a slash-command option as a non-empty string. */
export function stringOption(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim().length > 0 ? value.trim() : undefined
}

/** Reads a slash-command option as an integer (Discord sends integers as numbers). */
export function integerOption(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined
}
