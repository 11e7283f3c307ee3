/**
 * Resource ids: `<prefix>_<uuidv7 hex>`. UUIDv7 starts with the millisecond timestamp and Bun keeps it
 * monotonic within a process, so ids sort by creation time and can serve directly as pagination cursors.
 */
export type IdPrefix = 'ten' | 'usr' | 'conv' | 'msg' | (string & {})

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${Bun.randomUUIDv7().replaceAll('-', '')}`
}
