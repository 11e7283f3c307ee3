/** Polling for a condition: from every 10 ms back to every 100 ms, so a check that calls the API stays under its rate limit. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  let pause = 10
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(pause)
    pause = Math.min(100, pause * 1.5)
  }
}
