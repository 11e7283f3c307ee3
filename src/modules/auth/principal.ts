/** Who is calling: built by the auth plugin from a verified token or API key, never from client input. */
export interface Principal {
  readonly kind: 'user' | 'api_key'
  readonly userId: string
  readonly username: string
  readonly email: string
  /** the tenant the request acts in: the user's own, or X-Tenant-ID for a super_admin */
  readonly tenantId: string
  /** the tenant the user belongs to */
  readonly homeTenantId: string
  readonly roles: readonly string[]
  readonly sessionId?: string
  readonly jti?: string
  readonly apiKeyId?: string
  /** access token expiry, unix seconds */
  readonly expiresAt?: number
  readonly isSuperAdmin: boolean
  /** the grants the access decision uses (see modules/access) */
  readonly subject: import('../access').AccessSubject
}
