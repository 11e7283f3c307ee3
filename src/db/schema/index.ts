/** Every table of the gateway; drizzle-kit reads this file, and the client is typed by it. */
export * from './tenants'
export * from './users'
export * from './conversations'
export * from './sessions'
export * from './access'
export * from './voice'
