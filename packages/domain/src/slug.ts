/** Longest slug we produce before a uniqueness suffix; DNS labels allow 63. */
const MAX_SLUG_LENGTH = 48;

/**
 * A DNS- and URL-safe slug from an organisation name: ASCII lower-case letters, digits and
 * single hyphens. Letters with diacritics are folded to ASCII ("Café" → "cafe"); anything
 * that folds to nothing (e.g. a name in a non-Latin script) falls back to "org".
 * Uniqueness is not decided here: the store appends a suffix on collision.
 */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_SLUG_LENGTH)
    .replace(/-+$/g, '');
  return slug.length >= 2 ? slug : 'org';
}

/** `acme` → `acme-3f9a2c`: a collision-resolving variant of a slug. */
export function slugWithSuffix(slug: string, suffix: string): string {
  return `${slug}-${suffix}`;
}
