import { stringOption } from '../utils/text'

// `/hello name:x` -> "Hello, x!", visible only to the caller.
export const hello = slash({
  name: 'hello',
  description: 'Say hello',
  options: [{ name: 'name', description: 'Who to greet', type: 'string', required: false }],
  run: async (ctx) => {
    const name = stringOption(ctx.options.name) ?? 'world'
    await ctx.reply({ content: `Hello, ${name}!`, ephemeral: true })
  }
})
