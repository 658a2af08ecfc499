import { describeRoll, flipCoin, MAX_DICE, MAX_SIDES, rollDice } from '../utils/dice'
import { integerOption } from '../utils/text'

const DEFAULT_SIDES = 6

function sidesFrom(options: SlashCommandOptions): number | string {
  const sides = integerOption(options.sides) ?? DEFAULT_SIDES
  if (sides < 1 || sides > MAX_SIDES) return `A die needs 1 to ${MAX_SIDES} sides.`
  return sides
}

const sidesOption: SlashCommandOption = {
  name: 'sides',
  description: `Sides per die (default ${DEFAULT_SIDES})`,
  type: 'integer',
  required: false
}

// /dice roll [sides]              one die
// /dice flip                      heads or tails
// /dice multi roll count [sides]  several dice: a subcommand *group*
export const dice = slash({
  name: 'dice',
  description: 'Roll dice and flip coins',
  subcommands: [
    {
      name: 'roll',
      description: 'Roll one die',
      options: [sidesOption],
      run: async (ctx) => {
        const sides = sidesFrom(ctx.options)
        if (typeof sides === 'string') return ctx.reply({ content: sides, ephemeral: true })
        await ctx.reply(describeRoll(rollDice(1, sides)))
      }
    },
    {
      name: 'flip',
      description: 'Flip a coin',
      run: async (ctx) => {
        await ctx.reply(`The coin says ${flipCoin()}.`)
      }
    },
    {
      name: 'multi',
      description: 'Several dice at once',
      type: 'subcommand_group',
      subcommands: [
        {
          name: 'roll',
          description: 'Roll several dice',
          options: [
            { name: 'count', description: `How many dice (1-${MAX_DICE})`, type: 'integer', required: true },
            sidesOption
          ],
          run: async (ctx) => {
            const count = integerOption(ctx.options.count) ?? 1
            const sides = sidesFrom(ctx.options)
            if (typeof sides === 'string') return ctx.reply({ content: sides, ephemeral: true })
            if (count < 1 || count > MAX_DICE) {
              return ctx.reply({ content: `Roll 1 to ${MAX_DICE} dice.`, ephemeral: true })
            }
            await ctx.reply(describeRoll(rollDice(count, sides)))
          }
        }
      ]
    }
  ]
})
