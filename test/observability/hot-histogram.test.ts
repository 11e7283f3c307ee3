/**
 * The hot-path histogram must expose exactly what prom-client's Histogram would for the same observations:
 * dashboards and alerts read the same lines.
 */
import { describe, expect, test } from 'bun:test'
import { Histogram, Registry } from 'prom-client'
import { createHotHistogram } from '../../src/observability/hot-histogram'
import { createMetrics } from '../../src/observability/metrics'

const buckets = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1]
const values = [0, 0.0001, 0.00011, 0.0007, 0.003, 0.003, 0.02, 0.4, 0.9999, 1, 1.5, 42]

describe('hot histogram', () => {
  test('its exposition is prom-client’s, line for line', async () => {
    const ours = new Registry()
    const theirs = new Registry()
    const hot = createHotHistogram({ name: 'relay_seconds', help: 'h', labelNames: ['direction'], buckets, registers: [ours] })
    const ref = new Histogram({ name: 'relay_seconds', help: 'h', labelNames: ['direction'], buckets, registers: [theirs] })
    const up = hot.labels('upstream')
    const down = hot.labels('downstream')
    values.forEach((v, i) => {
      up.observe(v)
      ref.observe({ direction: 'upstream' }, v)
      if (i % 3 === 0) {
        down.observe(v * 2)
        ref.observe({ direction: 'downstream' }, v * 2)
      }
    })
    expect(await ours.metrics()).toBe(await theirs.metrics())
    // (prom-client adds empty exemplar slots; the values and labels are what count)
    const json = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({ ...m, values: m.values.map(({ labels, value, metricName }: any) => ({ labels, value, metricName })) }))
    expect(await json(ours)).toEqual(await json(theirs))
    ours.resetMetrics()
    theirs.resetMetrics()
    up.observe(0.002)
    ref.observe({ direction: 'upstream' }, 0.002)
    // prom-client forgets series on reset; ours keeps them at zero — compare the series both have
    const line = (text: string) => text.split('\n').filter((l) => l.includes('direction="upstream"'))
    expect(line(await ours.metrics())).toEqual(line(await theirs.metrics()))
  })

  test('voice_frames_relayed_total follows the relay latency observations when scraped', async () => {
    const metrics = createMetrics()
    const up = metrics.voiceRelayLatency.labels('upstream')
    for (let i = 0; i < 5; i++) up.observe(0.0002)
    expect(await metrics.registry.metrics()).toContain('voice_frames_relayed_total{direction="upstream"} 5')
    for (let i = 0; i < 3; i++) up.observe(0.0002)
    metrics.voiceRelayLatency.labels('downstream').observe(0.001)
    const text = await metrics.registry.metrics()
    expect(text).toContain('voice_frames_relayed_total{direction="upstream"} 8')
    expect(text).toContain('voice_frames_relayed_total{direction="downstream"} 1')
    expect(text).toContain('voice_relay_latency_seconds_count{direction="upstream"} 8')
  })
})
