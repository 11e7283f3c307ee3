/**
 * A labelled histogram for per-frame paths (voice relay latency, two observations per audio frame).
 * prom-client's `observe` hashes the label set on every call (~0.25 µs measured, as much as the rest of a
 * frame's bookkeeping); here a series is a plain array of bucket counts looked up once, and prom-client's
 * metric shape is built only when the registry is scraped. The exposition is the same as prom-client's
 * Histogram: cumulative `_bucket{le,…}` lines, then `_sum` and `_count`.
 */
import type { Registry } from 'prom-client'

export interface HistogramSeries {
  observe(value: number): void
}

interface Series extends HistogramSeries {
  readonly labels: Record<string, string>
  /** per bucket, not cumulative; the last slot counts values above every bound */
  readonly counts: number[]
  sum: number
  count: number
}

export interface HotHistogramOptions {
  name: string
  help: string
  labelNames: readonly string[]
  /** upper bounds in ascending order */
  buckets: readonly number[]
  registers: Registry[]
}

export type HotHistogram = ReturnType<typeof createHotHistogram>

export function createHotHistogram(opts: HotHistogramOptions) {
  const bounds = [...opts.buckets]
  const series = new Map<string, Series>()

  function makeSeries(labels: Record<string, string>): Series {
    const s: Series = {
      labels,
      counts: new Array(bounds.length + 1).fill(0),
      sum: 0,
      count: 0,
      observe(value: number) {
        s.sum += value
        s.count++
        let i = 0
        while (i < bounds.length && value > bounds[i]!) i++
        s.counts[i]!++
      },
    }
    return s
  }

  const metric = {
    name: opts.name,
    help: opts.help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    /** the series for these label values, in `labelNames` order (created on first use, kept) */
    labels(...values: string[]): HistogramSeries {
      const key = values.join('\u0000')
      let s = series.get(key)
      if (!s) {
        const labels: Record<string, string> = {}
        opts.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''))
        series.set(key, (s = makeSeries(labels)))
      }
      return s
    },
    /** observations so far per series */
    counts(): Array<{ labels: Record<string, string>; count: number }> {
      return [...series.values()].map((s) => ({ labels: s.labels, count: s.count }))
    },
    /** what prom-client's registry reads when scraped */
    get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = []
      for (const s of series.values()) {
        let cumulative = 0
        bounds.forEach((le, i) => {
          cumulative += s.counts[i]!
          values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${opts.name}_bucket` })
        })
        values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${opts.name}_bucket` })
        values.push({ labels: s.labels, value: s.sum, metricName: `${opts.name}_sum` })
        values.push({ labels: s.labels, value: s.count, metricName: `${opts.name}_count` })
      }
      return { name: opts.name, help: opts.help, type: metric.type, values, aggregator: metric.aggregator }
    },
    reset() {
      for (const s of series.values()) {
        s.counts.fill(0)
        s.sum = 0
        s.count = 0
      }
    },
  }
  for (const registry of opts.registers) registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
  return metric
}
