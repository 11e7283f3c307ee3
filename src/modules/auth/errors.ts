/** The auth failures of contract §2, in the seed's codes. */
import { AppError } from '../../errors'

export const authErrors = {
  tokenMissing: () => new AppError(401, 'TOKEN_MISSING', 'Missing authorization token'),
  tokenInvalid: (reason = 'invalid') => new AppError(401, 'TOKEN_INVALID', 'Invalid token', { reason }),
  tokenRevoked: () => new AppError(401, 'TOKEN_REVOKED', 'Token has been revoked'),
  serviceUnavailable: (cause?: unknown) =>
    new AppError(503, 'AUTH_SERVICE_ERROR', 'Authentication service unavailable', undefined, { cause }),
  userNotFound: () => new AppError(401, 'USER_NOT_FOUND', 'User not found or inactive'),
  userDisabled: () => new AppError(401, 'USER_DISABLED', 'User account is disabled'),
  tenantSuspended: () => new AppError(403, 'TENANT_SUSPENDED', 'Tenant is suspended'),
  tenantMismatch: () => new AppError(403, 'TENANT_MISMATCH', 'X-Tenant-ID does not match your tenant'),
  permissionDenied: (permission: string) =>
    new AppError(403, 'PERMISSION_DENIED', `Permission ${permission} is required`, { permission }),
  invalidCredentials: () => new AppError(401, 'INVALID_CREDENTIALS', 'Invalid email or password'),
  /** logout with an API key: a 200 would tell the client the key stopped working, and it would not */
  keyHasNoSession: () =>
    new AppError(400, 'VALIDATION_FAILED', 'An API key has no login session to end; revoke the key with DELETE /api/v2/api-keys/:id', [
      { field: 'authorization', in: 'header', message: 'logout takes an access token, not an API key' },
    ]),
}
