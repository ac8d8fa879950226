/**
 * The one normal form of an email address: what uniqueness, login and job ids use.
 * Trim and lower-case the whole address. (Lower-casing the local part is not strictly
 * RFC 5321, but every mainstream provider treats it case-insensitively and two accounts
 * differing only by case are a support and phishing hazard.)
 */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}
