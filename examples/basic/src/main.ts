// Entry point: wires the commands together. Everything the SDK offers
// (prefix, slash, createBot, embed, kv, rest, ...) is a global.
import { dice } from './commands/dice'
import { hello } from './commands/hello'
import { info, onInfoButton } from './commands/info'
import { ping } from './commands/ping'

createBot({
  prefix: '!',
  commands: [ping, info],
  slashCommands: [hello, dice]
})

on('componentInteraction', onInfoButton)
