/** The yardstick: a bare Bun.serve answering what /health answers, with no middleware at all. */
const startedAt = Date.now()
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: '127.0.0.1',
  fetch: () =>
    Response.json({ status: 'healthy', version: 'bare', uptime_s: Math.floor((Date.now() - startedAt) / 1000) }),
})
console.log(JSON.stringify({ msg: 'bare listening', port: server.port }))
