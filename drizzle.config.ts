import { defineConfig } from 'drizzle-kit'

/** `bun run db:generate -- --name <what_changed>` writes a new migration into ./drizzle; review it before landing. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
  strict: true,
  verbose: true,
})
