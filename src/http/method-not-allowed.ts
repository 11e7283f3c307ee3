/**
 * 405 instead of 404 when the path exists under another method. Elysia reports both as NOT_FOUND, so
 * the route table is compiled once into matchers and consulted only on that path.
 */
interface RouteLike {
  method: string
  path: string
}

interface PathMatcher {
  pattern: RegExp
  methods: Set<string>
}

function toPattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*'
      if (segment.startsWith(':')) return segment.endsWith('?') ? '[^/]*' : '[^/]+'
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return new RegExp(`^${source}/?$`)
}

export function createMethodIndex(routes: () => readonly RouteLike[]) {
  let matchers: PathMatcher[] | undefined

  function compile(): PathMatcher[] {
    const byPath = new Map<string, PathMatcher>()
    for (const route of routes()) {
      const method = route.method.toUpperCase()
      // catch-alls (CORS registers OPTIONS /*) would make every path look known
      if (method === 'ALL' || method === 'WS' || method === 'OPTIONS') continue
      const entry = byPath.get(route.path) ?? { pattern: toPattern(route.path), methods: new Set<string>() }
      entry.methods.add(method)
      if (method === 'GET') entry.methods.add('HEAD')
      byPath.set(route.path, entry)
    }
    return [...byPath.values()]
  }

  /** Methods the path accepts, empty when the path is unknown. */
  return function allowedMethods(pathname: string): string[] {
    matchers ??= compile()
    const allowed = new Set<string>()
    for (const m of matchers) if (m.pattern.test(pathname)) for (const method of m.methods) allowed.add(method)
    return [...allowed].sort()
  }
}
