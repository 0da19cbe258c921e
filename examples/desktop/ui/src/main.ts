// The example page: every call goes through the plugin's typed API; every type is generated
// from the Rust definitions.

import {
  append,
  backupNow,
  backupStatus,
  createConversation,
  getHistory,
  health,
  importFiles,
  isStorageError,
  listBackups,
  listConversations,
  onStorageEvent,
  searchConversations,
  searchEstate,
  type BackupStatus,
  type Conversation,
  type Manifest,
  type Message,
  type ResourceFilter,
  type Role,
  type SearchMode
} from 'tauri-plugin-cloudops-storage-api'

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} missing`)
  return el as T
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  node.append(...children)
  return node
}

let toastTimer: number | undefined
function toast(text: string, bad = false) {
  const t = $('toast')
  t.textContent = text
  t.className = bad ? 'show bad' : 'show'
  clearTimeout(toastTimer)
  toastTimer = window.setTimeout(() => (t.className = ''), 4000)
}

function failure(e: unknown) {
  toast(isStorageError(e) ? `${e.kind}: ${e.message}` : String(e), true)
}

const time = (ms: number | null | undefined) => (ms ? new Date(ms).toLocaleString() : '—')
const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`)
const userId = () => $<HTMLInputElement>('user').value.trim() || 'alice'

// --- tabs -----------------------------------------------------------------------------------

for (const tab of document.querySelectorAll<HTMLButtonElement>('.tab')) {
  tab.addEventListener('click', () => {
    document.querySelectorAll('.tab').forEach((t) => t.classList.toggle('active', t === tab))
    document.querySelectorAll('.screen').forEach((s) => s.classList.toggle('active', s.id === `screen-${tab.dataset.screen}`))
    if (tab.dataset.screen === 'backups') void refreshBackups()
  })
}

// --- conversations and chat -------------------------------------------------------------------

let current: Conversation | null = null

// Answers can arrive out of order (a slow read started before a write): only the newest
// request of each kind renders.
let listEpoch = 0
let historyEpoch = 0

async function refreshConversations() {
  const epoch = ++listEpoch
  const page = await listConversations(userId(), { limit: 100 })
  if (epoch !== listEpoch) return
  const list = $('conversations')
  list.replaceChildren(
    ...page.conversations.map((c) => {
      const item = el('li', { class: 'conversation', 'data-id': c.context_id }, el('span', { class: 'title' }, c.title), el('span', { class: 'count' }, String(c.message_count)))
      if (current?.context_id === c.context_id) item.classList.add('selected')
      item.addEventListener('click', () => void select(c))
      return item
    })
  )
}

function renderMessage(m: Message) {
  return el('li', { class: `message ${m.role}`, 'data-index': String(m.message_index) }, el('span', { class: 'meta' }, `${m.role} · ${time(m.created_at)}`), m.content)
}

async function renderHistory(c: Conversation) {
  const epoch = ++historyEpoch
  const history = await getHistory(c.context_id, 'all')
  if (epoch !== historyEpoch || current?.context_id !== c.context_id) return
  $('history').replaceChildren(...history.map(renderMessage))
}

async function select(c: Conversation) {
  current = c
  $('chat-title').textContent = c.title
  await renderHistory(c)
  await refreshConversations()
}

$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  const input = $<HTMLInputElement>('new-title')
  const title = input.value.trim() || 'Untitled'
  try {
    const c = await createConversation(userId(), title)
    input.value = ''
    await select(c)
  } catch (err) {
    failure(err)
  }
})

$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  const box = $<HTMLTextAreaElement>('message')
  const content = box.value.trim()
  if (!current || !content) return toast('Select a conversation and write a message', true)
  try {
    const conversation = current
    await append(conversation.context_id, { role: $<HTMLSelectElement>('role').value as Role, content })
    box.value = ''
    await renderHistory(conversation)
    await refreshConversations()
  } catch (err) {
    failure(err)
  }
})

$('user').addEventListener('change', () => {
  current = null
  $('chat-title').textContent = 'No conversation selected'
  $('history').replaceChildren()
  void refreshConversations().catch(failure)
})

// --- search ---------------------------------------------------------------------------------

$('search-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  const query = $<HTMLInputElement>('search-query').value.trim()
  const mode = $<HTMLSelectElement>('search-mode').value as SearchMode
  try {
    const results = await searchConversations(userId(), query, { mode, limit: 10 })
    const pending = results.pending_embeddings ? ` · ${results.pending_embeddings} messages not yet embedded` : ''
    $('search-summary').textContent = `${results.conversations.length} conversations (${results.mode})${pending}`
    $('search-results').replaceChildren(
      ...results.conversations.map((hit) =>
        el(
          'div',
          { class: 'hit', 'data-id': hit.context_id },
          el('h3', {}, hit.title, ' ', el('span', { class: 'score' }, `score ${hit.score.toFixed(3)}`)),
          ...hit.messages.map((m) => el('p', { class: 'snippet' }, el('span', { class: 'role' }, m.role), m.snippet))
        )
      )
    )
  } catch (err) {
    failure(err)
  }
})

// --- estate ---------------------------------------------------------------------------------

$('import-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  const path = $<HTMLInputElement>('import-path').value.trim()
  if (!path) return
  const out = $('import-result')
  try {
    const report = await importFiles([path], {}, (p) => (out.textContent = `${p.phase}: ${p.done} / ${p.total}`))
    const f = report.files[0]
    out.textContent = f.error
      ? `Not imported: ${f.error}`
      : `Imported ${f.resources} resource${f.resources === 1 ? '' : 's'} from ${f.format ?? 'file'} (${f.added} new, ${f.updated} updated)`
  } catch (err) {
    failure(err)
  }
})

$('estate-form').addEventListener('submit', async (e) => {
  e.preventDefault()
  const value = (id: string) => $<HTMLInputElement>(id).value.trim() || null
  const filter: Partial<ResourceFilter> = { region: value('filter-region'), resource_type: value('filter-type'), state: value('filter-state') }
  try {
    const hits = await searchEstate($<HTMLInputElement>('estate-query').value.trim(), filter, 25)
    $('estate-results')
      .querySelector('tbody')!
      .replaceChildren(
        ...hits.map(({ resource: r, score }) =>
          el('tr', { 'data-id': r.identifier }, el('td', {}, r.name ?? r.identifier), el('td', {}, r.resource_type), el('td', {}, r.region), el('td', {}, r.state ?? '—'), el('td', {}, r.account_id), el('td', {}, score.toFixed(3)))
        )
      )
    if (hits.length === 0) toast('No resources match')
  } catch (err) {
    failure(err)
  }
})

// --- backups --------------------------------------------------------------------------------

function renderStatus(s: BackupStatus) {
  const rows: [string, string][] = [
    ['Last backup', s.last_backup ?? 'none yet'],
    ['Last success', time(s.last_success_ms)],
    ['Last failure', s.last_failure_ms ? `${time(s.last_failure_ms)}: ${s.last_error ?? ''}` : '—'],
    ['Schedule', s.scheduled ? `next run ${time(s.next_run_ms)}` : 'not scheduled'],
  ]
  $('backup-status').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-key': k }, v)]))
}

function renderBackups(list: Manifest[]) {
  $('backup-list')
    .querySelector('tbody')!
    .replaceChildren(
      ...list
        .slice()
        .reverse()
        .map((m) =>
          el('tr', { 'data-name': m.name }, el('td', {}, m.name), el('td', {}, time(m.created_at_ms)), el('td', {}, String(m.collections.reduce((n, c) => n + c.points, 0))), el('td', {}, bytes(m.archive_bytes)), el('td', {}, `${m.writer_pause_ms.toFixed(1)} ms`))
        )
    )
}

let lastManual: Manifest | null = null

async function refreshBackups() {
  const [status, list] = await Promise.all([backupStatus(), listBackups()])
  // The status is the schedule's; a backup taken from this page is newer when it is later.
  if (lastManual && lastManual.created_at_ms > (status.last_success_ms ?? 0)) {
    status.last_backup = lastManual.name
    status.last_success_ms = lastManual.created_at_ms
  }
  renderStatus(status)
  renderBackups(list)
}

$('backup-now').addEventListener('click', async () => {
  const button = $<HTMLButtonElement>('backup-now')
  const bar = $<HTMLProgressElement>('backup-progress')
  button.disabled = true
  try {
    const m = await backupNow(false, (p) => {
      bar.max = Math.max(p.total, 1)
      bar.value = p.done
    })
    lastManual = m
    toast(`Backed up: ${m.name}`)
    await refreshBackups()
  } catch (err) {
    failure(err)
  } finally {
    button.disabled = false
  }
})

// --- start ----------------------------------------------------------------------------------

async function start() {
  void onStorageEvent((e) => {
    if (e.type === 'backup_failed') toast(`Backup failed: ${e.error}`, true)
    if (e.type === 'embeddings_pending' && e.count > 0) toast(`${e.count} messages waiting for embeddings`)
  })
  try {
    const h = await health()
    const pill = $('health')
    pill.textContent = `${h.store_reachable ? 'store open' : 'store unreachable'} · ${h.embedding_model ?? 'keyword only'}`
    pill.className = h.store_reachable ? 'pill ok' : 'pill bad'
    await refreshConversations()
  } catch (err) {
    const pill = $('health')
    pill.textContent = isStorageError(err) ? `${err.kind}` : 'error'
    pill.className = 'pill bad'
    failure(err)
  }
}

void start()
