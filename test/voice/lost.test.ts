/**
 * Rows a stopped instance left `active` (it died without seeing the ending) are swept to `failed`,
 * end_reason `instance_lost`; a live session's row is never touched. Embedded: the in-process store knows only
 * this process, so a row from the previous one is swept on the first pass.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { voiceSessions } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import { makeTenantWithUsers, type TestUser } from '../helpers/identity'
import { eventually, listeningGateway, type Msg, session, stopGateway } from './helpers'

let g: Awaited<ReturnType<typeof listeningGateway>>
let user: TestUser
beforeAll(async () => {
  g = await listeningGateway({ VOICE_LOST_SWEEP_S: '1' })
  ;({ user } = await makeTenantWithUsers(g.gw))
}, 30_000)
afterAll(() => stopGateway(g))

test("a previous process's active row becomes failed / instance_lost; the live session's row stays active", async () => {
  const orphan = newId('vs')
  await g.gw.deps.db.db.insert(voiceSessions).values({
    id: orphan,
    tenantId: user.tenantId,
    userId: user.id,
    conversationId: newId('conv'),
    config: {},
    startedAt: new Date(Date.now() - 120_000),
  })
  const live = await session(g.ws, { headers: user.auth })
  const view = async (id: string) => (await (await fetch(`${g.base}/api/v2/voice/sessions/${id}`, { headers: user.auth })).json()) as Msg
  await eventually(async () => (await view(orphan)).status === 'failed', 5_000, 'the orphan swept')
  expect(await view(orphan)).toMatchObject({ status: 'failed', end_reason: 'instance_lost' })
  expect((await view(orphan)).ended_at).toBeString()
  // older than a sweep period by now, and still live here
  await Bun.sleep(1_500)
  expect(await view(live.init.session_id)).toMatchObject({ status: 'active', end_reason: null })
  live.ws.close()
})
