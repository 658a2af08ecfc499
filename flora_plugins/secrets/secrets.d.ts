// Declarations of the secrets plugin's script API (secrets.js): the global `secrets`.

interface Secrets {
  /**
   * An opaque placeholder for the secret, replaced by its value only inside
   * `fetch()` URLs and headers sent to the hosts the secret allows.
   */
  get(name: string): string | undefined
}

declare var secrets: Secrets

interface FloraErrorCodes {
  SECRETS_DISABLED: true
}

declare module '@uwu/flora-sdk' {
  export import secrets = globalThis.secrets
}
