/**
 * The chat stream's group-committed writes: many streams' questions and answers in one statement, each write
 * still succeeding or failing on its own — on embedded PGlite and on a real Postgres (required under CI).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { asc, eq } from 'drizzle-orm'
import connect from 'postgres'
import { conversations, messages } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import type { AppendMessage } from '../../src/modules/conversations/service'
import { createMessageWriter } from '../../src/modules/conversations/writer'
import { createTestApp, type TestApp } from '../helpers/app'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'
import { conversationWorld, insertConversation } from './helpers'
import { rejectionOf } from '../helpers/rejection'

const drivers = [{ name: 'pglite', postgres: false }, ...(hasPostgres || ci ? [{ name: 'postgres', postgres: true }] : [])]

describe.each(drivers)('message writer on $name', ({ postgres }) => {
  let gw: TestApp
  let database: { url: string; drop: () => Promise<void> } | undefined
  let world: Awaited<ReturnType<typeof conversationWorld>>

  beforeAll(async () => {
    if (postgres) database = await createThrowawayDatabase()
    gw = await createTestApp(database ? { DATABASE_URL: database.url } : {})
    world = await conversationWorld(gw)
  }, 60_000)
  afterAll(async () => {
    await gw?.close()
    await database?.drop()
  })

  const db = () => gw.deps.db.db
  const question = (userId: string, content: string, extra: Partial<AppendMessage> = {}): AppendMessage => ({
    role: 'user',
    content,
    modality: 'text',
    status: 'completed',
    requestId: 'req-w',
    userId,
    ...extra,
  })

  test('200 new conversations with their questions, written together: every one stored, count 1, title trimmed', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const ids = Array.from({ length: 200 }, () => newId('conv'))
    await Promise.all(ids.map((id, i) => writer.start({ id, tenantId: world.tenantId, userId: world.alice.id, title: ` t${i} ` }, question(world.alice.id, `q${i}`))))
    const rows = await db().select().from(conversations).where(eq(conversations.userId, world.alice.id))
    const created = rows.filter((r) => ids.includes(r.id))
    expect(created).toHaveLength(200)
    expect(created.every((r) => r.messageCount === 1 && r.lastMessageAt !== null && r.title === r.title.trim())).toBe(true)
    const stored = await db().select().from(messages).where(eq(messages.conversationId, ids[7]!))
    expect(stored).toMatchObject([{ role: 'user', content: 'q7', status: 'completed', requestId: 'req-w', userId: world.alice.id }])
  })

  test('a question and its answer in the same batch: both stored in order, count 2, jsonb and integers intact', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const id = newId('conv')
    const conv = { id, tenantId: world.tenantId, userId: world.alice.id }
    const q = writer.start(conv, question(world.alice.id, 'why?', { id: newId('msg') }))
    const a = writer.append(conv, {
      ...question(world.alice.id, 'because', { id: newId('msg') }),
      role: 'assistant',
      status: 'cancelled',
      references: [{ id: 'doc', score: 0.5 }],
      usage: { prompt_tokens: 3 },
      ttftMs: 12,
      durationMs: 340,
    })
    await Promise.all([q, a])
    const rows = await db().select().from(messages).where(eq(messages.conversationId, id)).orderBy(asc(messages.id))
    expect(rows.map((r) => [r.role, r.content])).toEqual([
      ['user', 'why?'],
      ['assistant', 'because'],
    ])
    expect(rows[1]).toMatchObject({ status: 'cancelled', references: [{ id: 'doc', score: 0.5 }], usage: { prompt_tokens: 3 }, ttftMs: 12, durationMs: 340 })
    const [c] = await db().select().from(conversations).where(eq(conversations.id, id))
    expect(c!.messageCount).toBe(2)
  })

  test('a NUL or a lone surrogate in a message is stored as U+FFFD, and the rest of its batch is stored too', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const ids = [newId('conv'), newId('conv'), newId('conv')]
    const texts = ['nul \u0000 here', 'lone \ud800 here', 'fine 😀 \\u0000']
    await Promise.all(
      ids.map((id, i) =>
        writer.start({ id, tenantId: world.tenantId, userId: world.alice.id }, question(world.alice.id, texts[i]!, i === 0 ? { references: [{ title: 'x\u0000' }] } : {})),
      ),
    )
    const stored = await Promise.all(ids.map(async (id) => (await db().select().from(messages).where(eq(messages.conversationId, id)))[0]))
    expect(stored.map((m) => m?.content)).toEqual(['nul \uFFFD here', 'lone \uFFFD here', 'fine 😀 \\u0000'])
    expect(stored[0]!.references).toEqual([{ title: 'x\uFFFD' }])
  })

  test('quotes, backslashes, dollar quotes and SQL in a message are stored as sent', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const texts = [
      "it's ''quoted'' '",
      String.raw`back\slash \' \\ \n \u0041 E'\x41'`,
      "$$ $tag$ $1 '); delete from messages; --",
      'line\nbreak\ttab\r\n“curly” 汉字 😀',
    ]
    const ids = texts.map(() => newId('conv'))
    await Promise.all(ids.map((id, i) => writer.start({ id, tenantId: world.tenantId, userId: world.alice.id, title: texts[i] }, question(world.alice.id, texts[i]!, { references: [{ q: texts[i] }] }))))
    const stored = await Promise.all(ids.map(async (id) => (await db().select().from(messages).where(eq(messages.conversationId, id)))[0]))
    expect(stored.map((m) => m?.content)).toEqual(texts)
    expect(stored.map((m) => m?.references)).toEqual(texts.map((q) => [{ q }]))
  })

  test("starting a conversation whose id exists stores nothing and leaves that conversation as it was", async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const existing = await insertConversation(gw, world.bob, { title: 'kept' })
    const msgId = newId('msg')
    expect(await rejectionOf(writer.start({ id: existing.id, tenantId: world.tenantId, userId: world.alice.id, title: 'dup' }, question(world.alice.id, 'x', { id: msgId })))).toMatchObject({ status: 404 })
    expect(await db().select().from(messages).where(eq(messages.id, msgId))).toEqual([])
    expect((await db().select().from(conversations).where(eq(conversations.id, existing.id)))[0]).toEqual(existing)
  })

  test("a deleted conversation, or another tenant's, fails alone with 404; the rest of the batch is stored", async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const kept = await insertConversation(gw, world.alice)
    const gone = await insertConversation(gw, world.alice)
    await db().delete(conversations).where(eq(conversations.id, gone.id))
    const results = await Promise.allSettled([
      writer.append(kept, question(world.alice.id, 'fine')),
      writer.append(gone, question(world.alice.id, 'lost')),
      writer.append({ id: kept.id, tenantId: 'some-other-tenant' }, question(world.alice.id, 'breakout')),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected'])
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ status: 404, code: 'CONVERSATION_NOT_FOUND' })
    const rows = await db().select().from(messages).where(eq(messages.conversationId, kept.id))
    expect(rows.map((r) => r.content)).toEqual(['fine'])
    const [c] = await db().select().from(conversations).where(eq(conversations.id, kept.id))
    expect(c!.messageCount).toBe(1)
    expect(await db().select().from(messages).where(eq(messages.conversationId, gone.id))).toHaveLength(0)
  })

  test('a message tried again (appendLater) after a failure whose commit did happen: it resolves, stored and counted once', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const id = newId('conv')
    const conv = { id, tenantId: world.tenantId, userId: world.alice.id }
    const q = { ...question(world.alice.id, 'again?'), id: newId('msg') }
    await writer.start(conv, q)
    const answer = { ...q, id: newId('msg'), role: 'assistant' as const, content: 'once' }
    await writer.append(conv, answer)
    // the first try's reply was lost: the caller tries again (its duplicate id fails only its own write, which
    // goes alone, and counts as stored), while another stream writes; a new message goes through the same path
    const other = { ...q, id: newId('msg'), role: 'assistant' as const, content: 'beside' }
    await Promise.all([writer.appendLater(conv, answer), writer.append(conv, other)])
    await writer.appendLater(conv, { ...answer, id: newId('msg'), content: 'next' })
    const stored = await db().select().from(messages).where(eq(messages.conversationId, id)).orderBy(asc(messages.id))
    expect(stored.map((m) => m.content).sort()).toEqual(['again?', 'beside', 'next', 'once'])
    const [c] = await db().select().from(conversations).where(eq(conversations.id, id))
    expect(c!.messageCount).toBe(4)
  })

  // Postgres only: PGlite has one connection, so no other transaction can hold a row (and one batch runs at a time)
  if (postgres)
    test("a conversation whose row another transaction holds stalls its own writes only: the next batch takes the others', its later write waits its turn", async () => {
      const writer = createMessageWriter({ db: gw.deps.db })
      const locked = await insertConversation(gw, world.alice)
      const free = await insertConversation(gw, world.alice)
      const other = connect(database!.url, { max: 1, onnotice: () => {} })
      let release!: () => void
      const holding = new Promise<void>((r) => (release = r))
      let held!: () => void
      const isHeld = new Promise<void>((r) => (held = r))
      const tx = other.begin(async (sql) => {
        await sql`select 1 from conversations where id = ${locked.id} for update`
        held()
        await holding
      })
      try {
        await isHeld
        const settled: string[] = []
        const first = writer.append(locked, question(world.alice.id, 'first')).then(() => settled.push('first'))
        await Bun.sleep(50) // the first batch is in flight, waiting for the row
        // a second write to the held conversation and one to another, made together
        const second = writer.append(locked, question(world.alice.id, 'second')).then(() => settled.push('second'))
        await writer.append(free, question(world.alice.id, 'elsewhere'))
        settled.push('elsewhere')
        expect(settled).toEqual(['elsewhere'])
        release()
        await tx
        await Promise.all([first, second])
        expect(settled).toEqual(['elsewhere', 'first', 'second'])
        const rows = await db().select().from(messages).where(eq(messages.conversationId, locked.id)).orderBy(asc(messages.createdAt))
        expect(rows.map((r) => r.content)).toEqual(['first', 'second'])
        const [c] = await db().select().from(conversations).where(eq(conversations.id, locked.id))
        expect(c!.messageCount).toBe(2)
        expect(c!.lastMessageAt).toEqual(rows[1]!.createdAt)
      } finally {
        release()
        await tx.catch(() => {})
        await other.end()
      }
    }, 20_000)
})
