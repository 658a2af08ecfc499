// flora-hello's declarations (hello.js), assembled by `flora types` with the SDK's.

/** "<HELLO_GREETING>, <name>!" from the server (name defaults to "world"); counted per guild (`flora hello counts`). */
declare function hello(name?: string): Promise<string>

interface FloraSdk {
  hello: typeof hello
}

declare module '@uwu/flora-sdk' {
  export import hello = globalThis.hello
}
