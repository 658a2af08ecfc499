// `!info` -> an embed with a button; clicking the button answers privately.

export const INFO_BUTTON_ID = 'info:about'

export const info = prefix({
  name: 'info',
  description: 'What this bot is',
  run: async (ctx) => {
    const card = embed()
      .setTitle('flora example bot')
      .setDescription('A multi-file TypeScript bot running in its own V8 isolate.')
      .setColor(0x5865f2)
      .addField('Prefix commands', '`!ping`, `!info`', true)
      .addField('Slash commands', '`/hello`, `/dice`', true)
      .setFooter(`Asked by ${ctx.msg.author.username}`)

    const row = actionRow().addComponents(
      button().setCustomId(INFO_BUTTON_ID).setLabel('About').setStyle(ButtonStyle.Primary),
      button().setUrl('https://discord.com/developers/docs/intro').setLabel('Discord docs')
    )

    await ctx.reply({ embeds: [card.toJSON()], components: [row.toJSON()] })
  }
})

export async function onInfoButton(ctx: ComponentInteractionContext): Promise<void> {
  const data = ctx.msg.data as { custom_id?: string } | null
  if (data?.custom_id !== INFO_BUTTON_ID) return
  await ctx.reply({ content: 'Made with the flora SDK: prefix(), slash(), embed() and components.', ephemeral: true })
}
