// The web globals a flora isolate has (flora_plugins/sdk/web.js; fetch, Headers and Response come from
// the secrets plugin and are declared by it: flora_plugins/secrets/fetch.d.ts). Only these: there is no
// DOM, no ArrayBuffer, typed array or WebAssembly, so byte data is a plain number[]. A test type-checks
// a script that uses every one of them against the assembled declarations (`flora types`).

/** Runs `callback` after `delay` ms; a delay beyond the dispatch deadline throws a RangeError. */
// `...args` are any, as in the DOM's lib: `new Promise((resolve) => setTimeout(resolve, 10))` must type-check
declare function setTimeout(callback: (...args: any[]) => unknown, delay?: number, ...args: any[]): number
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
