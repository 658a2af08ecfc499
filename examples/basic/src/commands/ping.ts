import { joinWords } from '../utils/text'

// `!ping a b` -> "pong! args: a b"; a bare `!ping` -> "pong!"
export const ping = prefix({
  name: 'ping',
  description: 'Check that the bot is alive',
  run: async (ctx) => {
    const args = joinWords(ctx.args)
    await ctx.reply(args ? `pong! args: ${args}` : 'pong!')
  }
})
