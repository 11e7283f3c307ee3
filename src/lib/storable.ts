/**
 * Text Postgres can store. It refuses a NUL and a lone UTF-16 surrogate; in JSON both can only arrive as
 * escapes (`\u0000`, `\ud800`), so a text without such an escape needs no closer look.
 */

/** JSON escapes of a NUL or a surrogate (a valid pair matches too; the closer look tells them apart) */
export const SUSPECT_ESCAPE = /\\u(?:0000|d[89a-f])/i

export function isStorable(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed()
}

/** the text with each NUL and lone surrogate replaced by U+FFFD */
export function storableText(value: string): string {
  return value.toWellFormed().replaceAll('\u0000', '\uFFFD')
}

/** a JSON.stringify replacer that makes every string storable */
export function storableReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? storableText(value) : value
}

/** the dotted path of the first string (value or key) Postgres would refuse, or undefined; iterative, any depth */
export function unstorablePath(root: unknown): string | undefined {
  const stack: Array<[unknown, string]> = [[root, '']]
  while (stack.length > 0) {
    const [value, path] = stack.pop()!
    if (typeof value === 'string') {
      if (!isStorable(value)) return path
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], path ? `${path}.${i}` : String(i)])
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        const at = path ? `${path}.${key}` : key
        if (!isStorable(key)) return at
        stack.push([item, at])
      }
    }
  }
  return undefined
}
