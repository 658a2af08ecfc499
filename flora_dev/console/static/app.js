// flora dev console: plain JS, no build step. State comes from /api/*, live updates from /ws.
'use strict'
const $ = (sel) => document.querySelector(sel)
const S = { world: null, channel: null, member: null, commands: [], modal: null }

function esc (s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]))
}
function md (s) {
  return esc(s).replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
    .replace(/(^|\W)\*([^*]+)\*/g, '$1<i>$2</i>').replace(/^### (.*)$/gm, '<b>$1</b>')
    .replace(/^## (.*)$/gm, '<b>$1</b>').replace(/^# (.*)$/gm, '<b>$1</b>')
}
function el (tag, attrs = {}, html = '') {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v)
  }
  if (html) e.innerHTML = html
  return e
}
async function api (method, path, body) {
  const res = await fetch(path, { method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined })
  const data = await res.json()
  if (!res.ok) { addLog({ level: 'error', target: 'console', message: `${path}: ${data.error || res.status}`, timestamp: Date.now() }); throw new Error(data.error) }
  return data
}

// -- world, channels, members, commands -------------------------------------------------
async function loadWorld () {
  const w = S.world = await api('GET', '/api/world')
  $('#guild-name').textContent = w.guild.name
  document.title = `flora dev — ${w.project.split('/').pop()}`
  const ul = $('#channels'); ul.innerHTML = ''
  if (!S.channel) S.channel = w.channels[0]
  for (const c of w.channels) {
    ul.append(el('li', { 'data-id': c.id, class: c.id === S.channel.id ? 'active' : '', onclick: () => selectChannel(c) }, `# ${esc(c.name)}`))
  }
  const sel = $('#member')
  if (!sel.options.length) {
    for (const m of w.members) sel.append(el('option', { value: m.id }, esc(m.username)))
    S.member = w.members[0]
  }
  const me = w.members.find((m) => m.id === sel.value) || w.members[0]
  S.member = me
  $('#member-roles').textContent = me.roles.length ? `roles: ${me.roles.join(', ')}` : 'no roles'
  $('#composer').placeholder = `Message #${S.channel.name} as ${me.username} — e.g. !ping`
  showDeploy(w.deploy)
  setCommands(w.commands)
}
function showDeploy (d) {
  const box = $('#deploy')
  if (!d || d.ok === undefined) return
  box.className = 'deploy ' + (d.ok ? 'ok' : 'err')
  box.textContent = d.ok ? `deployed in ${d.ms} ms (${new Date(d.at * 1000).toLocaleTimeString()})` : `deploy failed:\n${d.error}`
}
function selectChannel (c) {
  S.channel = c
  $('#chan-title').textContent = `# ${c.name}`
  for (const li of document.querySelectorAll('#channels li')) li.classList.toggle('active', li.dataset.id === c.id)
  $('#composer').placeholder = `Message #${c.name} as ${S.member.username} — e.g. !ping`
  loadMessages()
}

// slash commands: flatten subcommands into paths ("dice multi roll")
function setCommands (cmds) {
  const flat = []
  for (const c of cmds.filter((c) => (c.type || 1) === 1)) {
    const walk = (opts, path) => {
      const subs = (opts || []).filter((o) => o.type === 1 || o.type === 2)
      if (!subs.length) flat.push({ name: c.name, path, options: opts || [], description: c.description })
      for (const s of subs) walk(s.options, [...path, { name: s.name, type: s.type }])
    }
    walk(c.options, [])
  }
  const key = (f) => [f.name, ...f.path.map((p) => p.name)].join(' ')
  const sel = $('#slash-cmd')
  const prev = sel.value
  const sig = flat.map(key).join('|')
  if (sel.dataset.sig === sig) return
  sel.dataset.sig = sig
  S.commands = flat
  sel.innerHTML = flat.length ? '' : '<option value="">(none registered)</option>'
  for (const f of flat) sel.append(el('option', { value: key(f) }, '/' + esc(key(f))))
  if (flat.some((f) => key(f) === prev)) sel.value = prev
  renderSlashOptions()
}
function currentCommand () {
  return S.commands.find((f) => [f.name, ...f.path.map((p) => p.name)].join(' ') === $('#slash-cmd').value)
}
function renderSlashOptions () {
  const box = $('#slash-opts'); box.innerHTML = ''
  const cmd = currentCommand()
  if (!cmd) return
  for (const o of cmd.options) {
    const kind = { 3: 'text', 4: 'number', 10: 'number', 5: 'checkbox' }[o.type] || 'text'
    box.append(el('label', {}, `${esc(o.name)}${o.required ? ' *' : ''} <span class="muted">${esc(o.description || '')}</span>`))
    if (o.choices && o.choices.length) {
      const s = el('select', { 'data-name': o.name, 'data-type': o.type })
      s.append(el('option', { value: '' }, '—'))
      for (const ch of o.choices) s.append(el('option', { value: ch.value }, esc(ch.name)))
      box.append(s)
    } else {
      box.append(el('input', { type: kind, 'data-name': o.name, 'data-type': o.type }))
    }
  }
}
async function runSlash () {
  const cmd = currentCommand()
  if (!cmd) return
  let options = []
  for (const inp of document.querySelectorAll('#slash-opts [data-name]')) {
    const type = Number(inp.dataset.type)
    if (type === 5) { if (inp.checked) options.push({ name: inp.dataset.name, type, value: true }); continue }
    if (inp.value === '') continue
    const value = type === 4 ? parseInt(inp.value, 10) : type === 10 ? Number(inp.value) : inp.value
    options.push({ name: inp.dataset.name, type, value })
  }
  for (const p of [...cmd.path].reverse()) options = [{ name: p.name, type: p.type, options }]
  await api('POST', '/api/slash', { channel_id: S.channel.id, user_id: S.member.id, name: cmd.name, options })
}

// -- messages --------------------------------------------------------------------------------
let loading = null
async function loadMessages () {
  if (loading) { loading.again = true; return }
  loading = { again: false }
  try {
    const msgs = await api('GET', `/api/messages/${S.channel.id}?user=${S.member.id}`)
    const box = $('#messages')
    // new messages keep the view at the end, unless the user scrolled up to read (or it is another channel)
    const sameChannel = box.dataset.channel === S.channel.id
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40
    const kept = box.scrollTop
    box.innerHTML = ''
    for (const m of msgs) box.append(renderMessage(m))
    box.dataset.channel = S.channel.id
    box.scrollTop = (atBottom || !sameChannel) ? box.scrollHeight : kept
  } finally {
    const again = loading.again
    loading = null
    if (again) loadMessages()
  }
}
function renderMessage (m) {
  const eph = (m.flags & 64) !== 0
  const div = el('div', { class: 'msg' + (eph ? ' ephemeral' : ''), 'data-id': m.id })
  const who = m.author || {}
  const t = new Date(m.timestamp).toLocaleTimeString()
  div.append(el('div', { class: 'head' }, `<span class="author">${esc(who.global_name || who.username)}</span>` +
    (who.bot ? '<span class="bot-tag">BOT</span>' : '') + `<span class="time">${esc(t)}${m.edited_timestamp ? ' (edited)' : ''}</span>`))
  if (eph) div.append(el('div', { class: 'eph-note' }, 'Only you can see this'))
  if (m.content) div.append(el('div', { class: 'content' }, md(m.content)))
  for (const e of m.embeds || []) div.append(renderEmbed(e))
  for (const c of m.components || []) div.append(renderComponent(c, m))
  if (m.reactions && m.reactions.length) {
    const r = el('div', { class: 'reactions' })
    for (const x of m.reactions) {
      const name = x.emoji.id ? `:${x.emoji.name}:` : x.emoji.name
      r.append(el('button', { type: 'button', class: 'reaction' + (x.me ? ' me' : ''), onclick: () => react(m, x.emoji.id ? `${x.emoji.name}:${x.emoji.id}` : x.emoji.name) }, `${esc(name)} ${x.count}`))
    }
    div.append(r)
  }
  return div
}
function renderEmbed (e) {
  const d = el('div', { class: 'embed', style: e.color != null ? `border-left-color:#${e.color.toString(16).padStart(6, '0')}` : null })
  if (e.author && e.author.name) d.append(el('div', { class: 'muted' }, esc(e.author.name)))
  if (e.title) d.append(el('div', { class: 'title' }, e.url ? `<a href="${esc(e.url)}" target="_blank">${esc(e.title)}</a>` : esc(e.title)))
  if (e.description) d.append(el('div', { class: 'content' }, md(e.description)))
  if (e.fields && e.fields.length) {
    const f = el('div', { class: 'fields' })
    for (const x of e.fields) f.append(el('div', { class: 'field' + (x.inline ? '' : ' block') }, `<div class="fname">${md(x.name)}</div><div>${md(x.value)}</div>`))
    d.append(f)
  }
  if (e.footer && e.footer.text) d.append(el('div', { class: 'footer' }, esc(e.footer.text)))
  return d
}
function renderComponent (c, m) {
  switch (c.type) {
    case 1: { const row = el('div', { class: 'row' }); for (const x of c.components || []) row.append(renderComponent(x, m)); return row }
    case 2: {
      const label = esc((c.emoji && c.emoji.name ? c.emoji.name + ' ' : '') + (c.label || ''))
      if (c.style === 5 || c.url) return el('a', { class: 'component s5', href: c.url, target: '_blank' }, `<button type="button" class="component s5">${label} ↗</button>`)
      return el('button', { type: 'button', class: `component s${c.style || 2}`, 'data-custom-id': c.custom_id, disabled: c.disabled, onclick: () => click(m, c.custom_id, 2) }, label)
    }
    case 3: case 5: case 6: case 7: case 8: {
      const s = el('select', { class: 'component', 'data-custom-id': c.custom_id, disabled: c.disabled })
      s.append(el('option', { value: '' }, esc(c.placeholder || 'Make a selection')))
      const opts = c.type === 3 ? (c.options || []) : kindOptions(c.type)
      for (const o of opts) s.append(el('option', { value: o.value }, esc(o.label)))
      s.addEventListener('change', () => { if (s.value) click(m, c.custom_id, c.type, [s.value]) })
      return s
    }
    case 10: return el('div', { class: 'content' }, md(c.content))
    case 14: return el('hr', { style: c.divider === false ? 'border:0;margin:6px 0' : 'border-color:#4e5058' })
    case 9: {
      const d = el('div', { class: 'section' })
      const left = el('div')
      for (const x of c.components || []) left.append(renderComponent(x, m))
      d.append(left)
      if (c.accessory) d.append(renderComponent(c.accessory, m))
      return d
    }
    case 11: return el('span', { class: 'muted' }, '[thumbnail]')
    case 12: return el('div', { class: 'muted' }, `[gallery: ${(c.items || []).length} item(s)]`)
    case 13: return el('div', { class: 'muted' }, `[file ${esc(c.file && c.file.url)}]`)
    case 17: {
      const d = el('div', { class: 'container', style: c.accent_color != null ? `border-left-color:#${c.accent_color.toString(16).padStart(6, '0')}` : null })
      for (const x of c.components || []) d.append(renderComponent(x, m))
      return d
    }
    default: return el('div', { class: 'muted' }, `[component type ${c.type}]`)
  }
}
function kindOptions (type) {
  const w = S.world
  if (type === 5 || type === 6 || type === 7) return w.members.map((x) => ({ value: x.id, label: x.username }))
  if (type === 8) return w.channels.map((x) => ({ value: x.id, label: '#' + x.name }))
  return []
}
async function click (m, customId, type, values) {
  await api('POST', '/api/click', { channel_id: m.channel_id, message_id: m.id, user_id: S.member.id, custom_id: customId, component_type: type, values })
}
async function react (m, emoji) {
  await api('POST', '/api/react', { channel_id: m.channel_id, message_id: m.id, user_id: S.member.id, emoji })
}

// -- modals ------------------------------------------------------------------------------------
function openModal (d) {
  if (d.user_id !== S.member.id) return
  S.modal = d
  $('#modal-title').textContent = d.modal.title
  const box = $('#modal-fields'); box.innerHTML = ''
  const inputs = []
  const walk = (c, label) => {
    if (c.type === 4) inputs.push({ c, label: c.label || label })
    else if (c.type === 18) walk(c.component, c.label)
    else for (const x of c.components || []) walk(x, label)
  }
  for (const c of d.modal.components) walk(c)
  for (const { c, label } of inputs) {
    box.append(el('label', {}, esc(label || c.custom_id)))
    const attrs = { 'data-custom-id': c.custom_id, placeholder: c.placeholder, required: c.required !== false }
    const inp = c.style === 2 ? el('textarea', attrs) : el('input', attrs)
    if (c.value) inp.value = c.value
    box.append(inp)
  }
  $('#modal').hidden = false
}
async function submitModal (ev) {
  ev.preventDefault()
  const d = S.modal
  const fields = {}
  for (const inp of document.querySelectorAll('#modal-fields [data-custom-id]')) fields[inp.dataset.customId] = inp.value
  $('#modal').hidden = true
  S.modal = null
  await api('POST', '/api/modal', { channel_id: d.channel_id, user_id: d.user_id, custom_id: d.modal.custom_id, fields, message_id: d.message_id })
}

// -- logs and KV ------------------------------------------------------------------------------
function addLog (l) {
  const box = $('#logs')
  const t = new Date(l.timestamp).toLocaleTimeString()
  box.append(el('div', { class: `log ${l.level}` }, `<span class="tgt">${esc(t)} ${esc(l.target)}</span> ${esc(l.message)}`))
  while (box.childElementCount > 500) box.firstChild.remove()
  box.scrollTop = box.scrollHeight
}
async function loadKv () {
  const data = await api('GET', '/api/kv')
  const box = $('#kv')
  if (data.error) { box.textContent = data.error; return }
  if (!data.stores.length) { box.textContent = 'no stores yet'; return }
  box.innerHTML = ''
  for (const s of data.stores) {
    box.append(el('div', { class: 'fname' }, esc(s.name)))
    const rows = s.entries.map((e) => `<tr><td>${esc(e.name)}</td><td>${esc(e.value)}</td></tr>`).join('')
    box.append(el('table', {}, rows || '<tr><td class="muted">empty</td></tr>'))
  }
}

// -- live updates -------------------------------------------------------------------------------
let kvTimer = null
function connect () {
  const ws = new WebSocket(`ws://${location.host}/ws`)
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data)
    if (msg.t === 'event') {
      if (!msg.channel_id || msg.channel_id === S.channel.id) loadMessages()
      if (msg.e.startsWith('CHANNEL_') || msg.e.startsWith('GUILD_')) loadWorld()
    } else if (msg.t === 'refresh') { loadMessages(); loadWorld() }
    else if (msg.t === 'log') {
      addLog(msg.d)
      clearTimeout(kvTimer); kvTimer = setTimeout(loadKv, 300)
    } else if (msg.t === 'deploy') { showDeploy(msg.d); loadWorld(); loadMessages() }
    else if (msg.t === 'modal') openModal(msg.d)
  }
  ws.onopen = () => { document.body.dataset.live = '1'; loadWorld().then(loadMessages) }
  ws.onclose = () => { document.body.dataset.live = ''; setTimeout(connect, 1000) }
}

async function main () {
  await loadWorld()
  for (const l of await api('GET', '/api/logs')) addLog(l)
  await loadMessages()
  loadKv()
  $('#composer-form').addEventListener('submit', async (ev) => {
    ev.preventDefault()
    const inp = $('#composer')
    const content = inp.value.trim()
    if (!content) return
    inp.value = ''
    await api('POST', '/api/say', { channel_id: S.channel.id, user_id: S.member.id, content })
  })
  $('#member').addEventListener('change', () => {
    S.member = S.world.members.find((m) => m.id === $('#member').value) || S.member
    loadWorld(); loadMessages()
  })
  $('#slash-cmd').addEventListener('change', renderSlashOptions)
  $('#slash-run').addEventListener('click', runSlash)
  $('#modal-form').addEventListener('submit', submitModal)
  $('#modal-cancel').addEventListener('click', () => { $('#modal').hidden = true; S.modal = null })
  $('#logs-clear').addEventListener('click', () => { $('#logs').innerHTML = '' })
  $('#kv-refresh').addEventListener('click', loadKv)
  connect()
  document.body.dataset.ready = '1'
}
main()
