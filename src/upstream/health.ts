/** Upstream liveness as the gateway sees it: the algorithm service's GET /health answers 2xx in time. */
export async function checkUpstreamHealth(baseUrl: string, timeoutMs: number): Promise<void> {
  const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) })
  await res.body?.cancel()
  if (!res.ok) throw new Error(`upstream health answered ${res.status}`)
}
