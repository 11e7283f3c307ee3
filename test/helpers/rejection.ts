/**
 * The reason `work` rejects with, for asserting on; throws if it resolves instead. Tests use this, not
 * `expect(p).rejects` / `.resolves`: in bun test those matchers deadlock once a Worker's message has settled an
 * earlier await (oven-sh/bun#37189, #43819), and the embedded database answers through a Worker.
 */
export async function rejectionOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection, but it resolved')
}
