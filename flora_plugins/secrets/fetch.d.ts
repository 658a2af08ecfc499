// Declarations of the secrets plugin's fetch() (fetch.js): fetch, Headers, Response. Bodies are text:
// there is no ArrayBuffer in a guild isolate.

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

interface FloraErrorCodes {
  FETCH_ERROR: true
  FETCH_BLOCKED: true
  FETCH_TIMEOUT: true
  FETCH_TOO_LARGE: true
}
