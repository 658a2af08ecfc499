"""The baseline for bench/dispatch.py: a bare disnake bot answering !ping in Python."""

import os

import disnake

disnake.http.Route.BASE = os.environ["FLORA_DISCORD_API_BASE"]
intents = disnake.Intents.default()
intents.message_content = True
client = disnake.Client(intents=intents, max_messages=None, chunk_guilds_at_startup=False)


@client.event
async def on_message(message: disnake.Message) -> None:
    if message.author.bot or not message.content.startswith("!ping"):
        return
    args = message.content.split()[1:]
    await message.reply(f"pong! args: {' '.join(args)}")


client.run(os.environ["DISCORD_TOKEN"])
