/**
 * /api/v2/conversations (contract §4): a caller's conversations and those shared with them. Routes only
 * need an authenticated caller; who may read, change or delete which conversation is decided per
 * conversation by the service (plain users hold no tenant-wide conversation grant).
 */
import { Elysia, t } from 'elysia'
import type { Deps } from '../../deps'
import { pageFrom } from '../../http/models'
import type { AuthPlugin } from '../auth/plugin'
import {
  ConversationList,
  ConversationListQuery,
  ConversationParams,
  ConversationView,
  CreateConversationBody,
  errors,
  MessageList,
  MessageListQuery,
  UpdateConversationBody,
} from './model'
import { type ConversationService, conversationView, createConversationService } from './service'

const tags = ['Conversations']

export function conversationRoutes({ auth, conversations }: { auth: AuthPlugin; conversations: ConversationService }) {
  return new Elysia({ name: 'voicehelper.conversations', prefix: '/api/v2' })
    .use(auth)
    .post(
      '/conversations',
      async ({ principal, body, set }) => {
        const row = await conversations.create(principal, body?.title)
        set.status = 201
        return conversationView(row)
      },
      {
        auth: true,
        // every field is optional, so no body at all is fine too: an untitled conversation
        body: t.Optional(CreateConversationBody),
        response: { 201: ConversationView, ...errors },
        detail: { tags, summary: 'Start a conversation owned by the caller' },
      },
    )
    .get(
      '/conversations',
      ({ principal, query }) => conversations.list(principal, { scope: query.scope, userId: query.user_id }, pageFrom(query)),
      {
        auth: true,
        query: ConversationListQuery,
        response: { 200: ConversationList, ...errors },
        detail: {
          tags,
          summary: "The caller's conversations and those shared with them, newest-updated first (?user_id=: another member's, with a tenant-wide conversation:read)",
        },
      },
    )
    .get('/conversations/:id', async ({ principal, params }) => conversationView(await conversations.get(principal, params.id)), {
      auth: true,
      params: ConversationParams,
      response: { 200: ConversationView, ...errors },
      detail: { tags, summary: 'Get a conversation (owner or shared)' },
    })
    .patch(
      '/conversations/:id',
      async ({ principal, params, body }) => conversationView(await conversations.update(principal, params.id, body)),
      {
        auth: true,
        params: ConversationParams,
        body: UpdateConversationBody,
        response: { 200: ConversationView, ...errors },
        detail: { tags, summary: 'Rename or archive a conversation (owner or write share)' },
      },
    )
    .delete(
      '/conversations/:id',
      async ({ principal, params, set }) => {
        await conversations.remove(principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: ConversationParams,
        response: { 204: t.Void(), ...errors },
        detail: { tags, summary: 'Delete a conversation and its messages (owner or conversation:delete)' },
      },
    )
    .get('/conversations/:id/messages', ({ principal, params, query }) => conversations.messages(principal, params.id, pageFrom(query)), {
      auth: true,
      params: ConversationParams,
      query: MessageListQuery,
      response: { 200: MessageList, ...errors },
      detail: { tags, summary: "A conversation's messages, oldest first" },
    })
}

export function conversationsModule({ auth, deps }: { auth: AuthPlugin; deps: Pick<Deps, 'db'> }) {
  return conversationRoutes({ auth, conversations: createConversationService({ db: deps.db.db }) })
}
