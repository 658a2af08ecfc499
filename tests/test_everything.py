"""One script that uses the SDK's globals together: builders, embeds, components (v1 and v2),
replies, edits, reactions, pins, deferrals, follow-ups, modals, component updates, kv, cron,
secrets, console and events. Every Discord call it makes is checked at the emulator."""

from __future__ import annotations

import time

from conftest import deploy_files, emulator_guild, http_json, wait_for

SCRIPT = r"""
const store = kv.store('everything');
cron('nightly', '0 3 * * *', () => console.log('nightly'));
const missing = secrets.get('NOT_SET');

createBot({
  prefix: '!',
  commands: [
    prefix({ name: 'all', run: async (ctx) => {
      const e = embed().setTitle('Title').setDescription('Desc').setColor(0xff0000).addField('a', 'b', true)
        .setFooter('foot').setTimestamp('2026-01-01T00:00:00Z').setAuthor('me');
      const row = actionRow().addComponents(
        button().setCustomId('go').setLabel('Go').setStyle(ButtonStyle.Success),
        button().setUrl('https://example.com').setLabel('Site'));
      const pick = stringSelect('pick').setPlaceholder('Pick').setOptions([{ label: 'One', value: '1' }, { label: 'Two', value: '2' }]);
      const sent = await rest.sendMessage({ channelId: ctx.msg.channelId, embeds: [e.toJSON()], components: [row, pick] });
      await rest.addReaction({ channelId: ctx.msg.channelId, messageId: sent.id, emoji: '👍' });
      await rest.editMessage({ channelId: ctx.msg.channelId, messageId: sent.id, content: 'edited', embeds: [e.toJSON()] });
      await rest.pinMessage({ channelId: ctx.msg.channelId, messageId: sent.id });
      const fetched = await rest.fetchMessage({ channelId: ctx.msg.channelId, messageId: sent.id });
      await store.set('count', '1');
      const n = await store.incr('count', 2);
      const v2 = container().setAccentColor(0x00ff00).addComponents(
        textDisplay('V2 text'), separator(), section().addComponents(textDisplay('in a section')).setAccessory(thumbnail('https://example.com/t.png')),
        mediaGallery().addItem('https://example.com/a.png', { description: 'pic' }));
      await ctx.reply({ components: [v2], flags: MessageFlags.IS_COMPONENTS_V2 });
      await ctx.reply(`count ${n}, fetched ${fetched.content}, secret ${typeof missing}, uuid ${crypto.randomUUID().length}`);
    } }),
  ],
  slashCommands: [
    slash({ name: 'form', description: 'a modal', run: (ctx) => ctx.showModal({ customId: 'form', title: 'Form',
      components: [label('Name').setComponent(inputText('name').setStyle(InputTextStyle.Short).setRequired(true))] }) }),
    slash({ name: 'later', description: 'defer, edit, follow up', run: async (ctx) => {
      const p = ctx.msg;
      await rest.deferInteractionResponse({ interactionId: p.interactionId, token: p.interactionToken, ephemeral: true });
      await rest.editOriginalInteractionResponse({ token: p.interactionToken, content: 'later done' });
      await rest.createFollowupMessage({ token: p.interactionToken, content: 'and a follow-up' });
    } }),
  ],
});
on('componentInteraction', (ctx) => ctx.update({ content: 'clicked ' + ctx.msg.data.custom_id, components: [] }));
on('modalSubmit', (ctx) => ctx.reply({ content: 'thanks ' + ctx.msg.data.custom_id, ephemeral: true }));
on('reactionAdd', (ctx) => console.info('reaction', ctx.msg.emoji.name, 'on', ctx.msg.messageId));
"""


def test_one_script_using_the_whole_sdk(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Everything")
    gid, ch, uid = g["id"], g["channel_id"], g["user_id"]
    status, _ = http_json("POST", f"{stack.api}/kv/stores", {"guild_id": gid, "store_name": "everything"}, token=stack.token)
    assert status == 200
    status, body = deploy_files(stack, gid, {"src/main.ts": SCRIPT})
    assert status == 200, body
    wait_for(lambda: {c["name"] for c in emu.commands(gid)} >= {"form", "later"}, message="slash commands")
    since = time.time()

    emu.user_says(ch, uid, "!all")
    summary = wait_for(
        lambda: [m for m in emu.messages(ch) if m["author"].get("bot") and m["content"].startswith("count ")],
        message="summary reply",
    )[0]
    # no SECRETS_MASTER_KEY on this server: secrets.get gives a placeholder, and fetch() would say secrets are disabled
    assert summary["content"] == "count 3, fetched edited, secret string, uuid 36"
    sent = emu.find_requests("POST", rf"^/channels/{ch}/messages$", since=since)
    first = sent[0]["json"]
    assert first["embeds"][0] == {
        "title": "Title",
        "description": "Desc",
        "color": 0xFF0000,
        "timestamp": "2026-01-01T00:00:00Z",
        "footer": {"text": "foot"},
        "author": {"name": "me"},
        "fields": [{"name": "a", "value": "b", "inline": True}],
    }
    assert first["components"][0]["type"] == 1 and [b["style"] for b in first["components"][0]["components"]] == [3, 5]
    assert first["components"][1] == {
        "type": 1,
        "components": [
            {
                "type": 3,
                "custom_id": "pick",
                "placeholder": "Pick",
                "options": [{"label": "One", "value": "1"}, {"label": "Two", "value": "2"}],
            }
        ],
    }
    v2 = sent[1]["json"]
    assert v2["flags"] & 32768 and v2["components"][0]["type"] == 17
    assert [c["type"] for c in v2["components"][0]["components"]] == [10, 14, 9, 12]
    assert v2["message_reference"]["message_id"]  # ctx.reply references the triggering message
    message_id = emu.find_requests("PUT", rf"^/channels/{ch}/messages/\d+/reactions/", since=since)[0]["path"].split("/")[4]
    assert emu.find_requests("PATCH", rf"^/channels/{ch}/messages/{message_id}$", since=since)[0]["json"]["content"] == "edited"
    assert emu.find_requests("PUT", rf"^/channels/{ch}/(messages/)?pins/{message_id}$", since=since)

    bot_msg = next(m for m in emu.messages(ch) if m["id"] == message_id)
    emu.react(ch, bot_msg["id"], uid, "🎉")
    stack.wait_log(gid, f"reaction 🎉 on {message_id}")
    click = emu.click_component(ch, message_id, uid, "go")
    update = wait_for(lambda: emu.interaction(click["id"])["responses"], message="component update")[0]
    assert update == {"type": 7, "data": {"content": "clicked go", "components": []}}

    form = emu.invoke_slash(gid, ch, uid, "form")
    modal = wait_for(lambda: emu.interaction(form["id"])["responses"], message="modal")[0]
    assert modal["type"] == 9 and modal["data"]["custom_id"] == "form"
    assert modal["data"]["components"][0]["type"] == 18 and modal["data"]["components"][0]["component"]["custom_id"] == "name"
    submitted = emu.submit_modal(gid, ch, uid, "form", fields={"name": "flora"})
    thanks = wait_for(lambda: emu.interaction(submitted["id"])["responses"], message="modal answer")[0]
    assert thanks["data"]["content"] == "thanks form" and thanks["data"]["flags"] & 64

    later = emu.invoke_slash(gid, ch, uid, "later")
    state = wait_for(lambda: (s := emu.interaction(later["id"]))["followups"] and s, message="deferral flow")
    assert [r["type"] for r in state["responses"]] == [5] and state["responses"][0]["data"]["flags"] & 64
    assert state["original"]["content"] == "later done" and state["followups"][0]["content"] == "and a follow-up"

    status, value = http_json("GET", f"{stack.api}/kv/{gid}/everything/count", token=stack.token)
    assert status == 200 and value == {"value": "3"}
    assert not emu.unknown_routes
