// The starter bot flora runs in every guild that has not deployed a script.
// Deploy your own `src/main.ts` to replace it.
//
//   !ping [words]        -> "pong" / "pong (words)"
//   /hello [name]        -> "Hello, <name>!" (only you see it)
//   /counter get|increment|reset   a counter kept in the KV store "counters"
//     (create the store first: `flora kv create --guild-id <id> --store counters`)
import { greeting, pongText } from './utils/reply'

const COUNTER_STORE = 'counters'
const COUNTER_KEY = 'main'

async function readCount(): Promise<number> {
  const raw = await kv.store(COUNTER_STORE).get(COUNTER_KEY)
  return parseInt(raw || '0', 10)
}

const ping = prefix({
  name: 'ping',
  description: 'Answer with pong',
  run: async (ctx) => {
    await ctx.reply(pongText(ctx.args))
  }
})

const hello = slash({
  name: 'hello',
  description: 'Say hello',
  options: [{ name: 'name', description: 'Who to greet', type: 'string', required: false }],
  run: async (ctx) => {
    await ctx.reply({ content: greeting(ctx.options.name), ephemeral: true })
  }
})

const counter = slash({
  name: 'counter',
  description: 'A counter kept in KV storage',
  subcommands: [
    {
      name: 'get',
      description: 'Show the current count',
      run: async (ctx) => {
        const raw = await kv.store(COUNTER_STORE).get(COUNTER_KEY)
        await ctx.reply(`Current count: ${raw || 0}`)
      }
    },
    {
      name: 'increment',
      description: 'Add one to the count',
      run: async (ctx) => {
        const next = (await readCount()) + 1
        await kv.store(COUNTER_STORE).set(COUNTER_KEY, String(next))
        await ctx.reply(`Count is now: ${next}`)
      }
    },
    {
      name: 'reset',
      description: 'Set the count back to zero',
      run: async (ctx) => {
        await kv.store(COUNTER_STORE).set(COUNTER_KEY, '0')
        await ctx.reply('Counter reset to 0')
      }
    }
  ]
})

createBot({
  prefix: '!',
  commands: [ping],
  slashCommands: [hello, counter]
})
