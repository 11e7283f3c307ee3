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
}
