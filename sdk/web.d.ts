// The web globals a flora isolate has (flora_plugins/sdk/web.js, and fetch from the secrets plugin,
// flora_plugins/secrets/fetch.js). Only these: there is no DOM, no ArrayBuffer, typed array or
// WebAssembly, so byte data is a plain number[]. Referenced by index.d.ts; a test type-checks a script
// that uses every one of them against this file.

/** Runs `callback` after `delay` ms; a delay beyond the dispatch deadline throws a RangeError. */
declare function setTimeout<A extends unknown[]>(callback: (...args: A) => unknown, delay?: number, ...args: A): number
declare function clearTimeout(id: number | undefined): void
declare function queueMicrotask(callback: () => unknown): void
declare function btoa(data: string): string
declare function atob(data: string): string
declare function structuredClone<T>(value: T): T

/** UTF-8 only; bytes are a plain number[] (there is no Uint8Array in an isolate). */
declare class TextEncoder {
  readonly encoding: "utf-8"
  encode(input?: string): number[]
}
declare class TextDecoder {
  readonly encoding: "utf-8"
  decode(bytes?: ArrayLike<number>): string
}

declare const crypto: {
  /** A random (v4) UUID. */
  randomUUID(): string
}

declare class URLSearchParams {
  constructor(init?: string | Record<string, string> | [string, string][])
  append(name: string, value: string): void
  delete(name: string): void
  get(name: string): string | null
  getAll(name: string): string[]
  has(name: string): boolean
  set(name: string, value: string): void
  sort(): void
  forEach(fn: (value: string, key: string, parent: URLSearchParams) => void, thisArg?: unknown): void
  keys(): IterableIterator<string>
  values(): IterableIterator<string>
  entries(): IterableIterator<[string, string]>
  readonly size: number
  toString(): string
}

declare class URL {
  constructor(url: string, base?: string | URL)
  protocol: string
  username: string
  password: string
  hostname: string
  port: string
  host: string
  readonly origin: string
  pathname: string
  search: string
  hash: string
  readonly searchParams: URLSearchParams
  href: string
  toString(): string
  toJSON(): string
}

type HeadersInit = Headers | Record<string, string> | [string, string][]

declare class Headers {
  constructor(init?: HeadersInit)
  append(name: string, value: string): void
  set(name: string, value: string): void
  delete(name: string): void
  get(name: string): string | null
  has(name: string): boolean
  getSetCookie(): string[]
  entries(): IterableIterator<[string, string]>
  keys(): IterableIterator<string>
  values(): IterableIterator<string>
  forEach(fn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void
  [Symbol.iterator](): IterableIterator<[string, string]>
}

/** A response, read whole before `fetch` resolves; bodies are text. */
declare class Response {
  readonly status: number
  readonly statusText: string
  readonly ok: boolean
  readonly url: string
  readonly redirected: boolean
  readonly type: "basic"
  readonly headers: Headers
  readonly bodyUsed: boolean
  text(): Promise<string>
  json<T = JsonValue>(): Promise<T>
  clone(): Response
}

interface RequestInit {
  method?: string
  headers?: HeadersInit
  /** Text, or URLSearchParams (sent as a form). Not allowed with GET or HEAD. */
  body?: string | URLSearchParams | null
  redirect?: "follow" | "manual" | "error"
}

/**
 * HTTP(S) to public hosts (the runtime refuses private and metadata addresses unless the operator
 * allows them). `secrets.get(name)` placeholders in the URL and header values are replaced for the
 * secret's allowed hosts. Rejects with a FloraError: FETCH_BLOCKED, FETCH_TIMEOUT, FETCH_TOO_LARGE,
 * FETCH_ERROR, or INVALID_INPUT.
 */
declare function fetch(input: string | URL | { url: string; method?: string; headers?: HeadersInit }, init?: RequestInit): Promise<Response>
