// Declarations of the kv plugin's script API (kv.js): `kv`, `store`, `KvStore`, each a global and a
// member of `flora`.

interface RawKvSetOptions {
  /** Unix time in seconds. */
  expiration?: number | bigint
  metadata?: JsonValue
}

interface RawKvListKeysOptions {
  prefix?: string
  /** Default 100, max 1000. */
  limit?: number | bigint
  /** The `cursor` of the previous page. */
  cursor?: string
}

interface RawKvKeyInfo {
  name: string
  expiration?: number
  metadata?: JsonValue
}

interface RawKvListKeysResult {
  keys: RawKvKeyInfo[]
  listComplete: boolean
  cursor?: string
}

interface RawKvGetResult {
  value: string | null
  metadata?: Record<string, unknown>
}

/** A named key-value store of this guild (create it first with the API or CLI). */
declare class KvStore {
  constructor(storeName: string)
  get(key: string): Promise<string | null>
  getWithMetadata(key: string): Promise<RawKvGetResult>
  set(key: string, value: string, options?: RawKvSetOptions): Promise<void>
  updateMetadata(key: string, metadata: JsonValue | undefined): Promise<void>
  delete(key: string): Promise<void>
  list(options?: RawKvListKeysOptions): Promise<RawKvListKeysResult>
  /** Atomically adds `by` (default 1) to an integer value (missing = 0); the new value. Not in the original flora. */
  incr(key: string, by?: number): Promise<number>
  /**
   * Sets `value` only if the current value is `expected` (null = key absent);
   * true if it was set. Not in the original flora.
   */
  compareAndSet(key: string, expected: string | null, value: string, options?: RawKvSetOptions): Promise<boolean>
}

declare function store(name: string): KvStore
declare const kv: { store(name: string): KvStore }

interface FloraSdk {
  kv: typeof kv
  store: typeof store
  KvStore: typeof KvStore
}

interface FloraErrorCodes {
  KV_NOT_FOUND: true
  KV_STORE_EXISTS: true
  KV_QUOTA_EXCEEDED: true
  KV_RATE_LIMITED: true
  KV_NOT_AN_INTEGER: true
  KV_UNAVAILABLE: true
}

declare module '@uwu/flora-sdk' {
  export import kv = globalThis.kv
  export import store = globalThis.store
  export import KvStore = globalThis.KvStore
}
