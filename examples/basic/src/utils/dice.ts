// Dice maths, kept apart from Discord so it is easy to read and to test.

export enum Coin {
  Heads = 'heads',
  Tails = 'tails'
}

export interface DiceRoll {
  sides: number
  rolls: number[]
  total: number
}

export const MAX_SIDES = 1000
export const MAX_DICE = 20

/** A whole number from 1 to `sides`; `random` returns a number in [0, 1). */
export function rollDie(sides: number, random: () => number = Math.random): number {
  return Math.floor(random() * sides) + 1
}

export function rollDice(count: number, sides: number, random: () => number = Math.random): DiceRoll {
  const rolls = Array.from({ length: count }, () => rollDie(sides, random))
  return { sides, rolls, total: rolls.reduce((sum, n) => sum + n, 0) }
}

export function flipCoin(random: () => number = Math.random): Coin {
  return random() < 0.5 ? Coin.Heads : Coin.Tails
}

/** "You rolled 4 (d6)" for one die, "You rolled 1, 5 (2d6), total 6" for several. */
export function describeRoll(roll: DiceRoll): string {
  if (roll.rolls.length === 1) return `You rolled ${roll.total} (d${roll.sides})`
  return `You rolled ${roll.rolls.join(', ')} (${roll.rolls.length}d${roll.sides}), total ${roll.total}`
}
