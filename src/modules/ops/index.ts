/** Operational endpoints, no auth: liveness, readiness, Prometheus metrics. */
import { Elysia, t } from 'elysia'
import type { Deps } from '../../deps'
import { type CheckResult, runChecks } from '../../observability/health'
import { checkUpstreamHealth } from '../../upstream/health'

const Health = t.Object({ status: t.Literal('healthy'), version: t.String(), uptime_s: t.Number() })
const Dependency = t.Object({ status: t.Union([t.Literal('up'), t.Literal('down')]), latency_ms: t.Number() })
const Ready = t.Object({
  status: t.Union([t.Literal('ready'), t.Literal('not_ready')]),
  draining: t.Boolean(),
  checks: t.Object({ database: Dependency, store: Dependency, upstream: Dependency }),
  upstreams: t.Array(t.Object({ status: t.Union([t.Literal('up'), t.Literal('down')]) })),
})

export function opsModule(deps: Deps) {
  const { config, db, store, metrics, lifecycle, logger } = deps
  const startedAt = Date.now()

  async function readiness() {
    const timeout = config.readyCheckTimeoutMs
    const upstreamChecks = Object.fromEntries(
      deps.upstreamUrls().map((url, i) => [`upstream_${i + 1}`, () => checkUpstreamHealth(url, timeout)]),
    )
    const results = await runChecks(
      { database: () => db.ping(timeout), store: () => store.ping(), ...upstreamChecks },
      timeout,
    )
    const upstreams = Object.entries(results).filter(([name]) => name.startsWith('upstream_'))
    const anyUpstream = upstreams.find(([, r]) => r.status === 'up')?.[1]
    const upstream = anyUpstream ?? upstreams[0]?.[1] ?? { status: 'down' as const, latency_ms: 0 }
    const checks = { database: results.database!, store: results.store!, upstream }
    for (const [name, r] of Object.entries(results)) {
      metrics.dependencyUp.set({ dependency: name }, r.status === 'up' ? 1 : 0)
      if (r.status === 'down') logger.warn({ dependency: name, reason: r.error }, 'dependency not ready')
    }
    const ok = !lifecycle.draining && Object.values(checks).every((c) => c.status === 'up')
    return {
      ok,
      body: {
        status: ok ? ('ready' as const) : ('not_ready' as const),
        draining: lifecycle.draining,
        checks: { database: brief(checks.database), store: brief(checks.store), upstream: brief(checks.upstream) },
        upstreams: upstreams.map(([, r]) => ({ status: r.status })),
      },
    }
  }

  return new Elysia({ name: 'voicehelper.ops' })
    .get(
      '/health',
      () => ({ status: 'healthy' as const, version: config.version, uptime_s: Math.floor((Date.now() - startedAt) / 1000) }),
      { response: Health, detail: { tags: ['Operations'], summary: 'Liveness' } },
    )
    .get(
      '/ready',
      async ({ set }) => {
        const { ok, body } = await readiness()
        set.status = ok ? 200 : 503
        return body
      },
      {
        response: { 200: Ready, 503: Ready },
        detail: { tags: ['Operations'], summary: 'Readiness of the database, the store and the upstreams' },
      },
    )
    .get(
      '/metrics',
      async ({ set }) => {
        set.headers['content-type'] = metrics.registry.contentType
        return metrics.registry.metrics()
      },
      { detail: { tags: ['Operations'], summary: 'Prometheus metrics' } },
    )
}

/** Only status and latency leave the gateway; the reason (which may quote a driver) goes to the log. */
function brief({ status, latency_ms }: CheckResult): Pick<CheckResult, 'status' | 'latency_ms'> {
  return { status, latency_ms }
}
