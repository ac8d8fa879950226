import { BadRequestError } from '@tenantry/domain';

/**
 * Request JSON, parsed so that what we store is exactly what the client sent — or refused.
 *
 * `JSON.parse` alone changes data silently or lets later code crash:
 * - 10,000 levels of nesting parse fine, then any recursive walk (validation, our own
 *   checks) overflows the stack: a 500. Depth is bounded here, before anything recursive.
 * - invalid UTF-8 becomes U+FFFD under a lenient decoder;
 * - `1e400` becomes Infinity (written back as null), and 20-digit integers lose digits;
 * - `"\ud800"` is valid JSON but not a string Postgres can store (a 500 later);
 * - a `__proto__` key survives JSON.parse but is dropped (or worse) by the first plain
 *   assignment of the object, as schema validators do.
 * Each is refused with a 400 and a code of its own.
 */

/** Deepest nesting of objects and arrays accepted in a request (documented in docs/api.md). */
export const MAX_JSON_DEPTH = 64;

export class StrictJsonError extends BadRequestError {
  constructor(code: 'invalid_json' | 'invalid_utf8' | 'json_too_deep' | 'number_not_exact' | 'invalid_string' | 'forbidden_key', message: string) {
    super(code, message);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decode request bytes as UTF-8, refusing invalid sequences instead of replacing them. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new StrictJsonError('invalid_utf8', 'The body is not valid UTF-8');
  }
}

/** Parse JSON text under the rules above. */
export function parseStrictJson(text: string): unknown {
  scanTokens(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StrictJsonError('invalid_json', 'The body is not valid JSON');
  }
  checkValues(value);
  return value;
}

/** Decode and parse a request body. */
export function parseStrictJsonBytes(bytes: Uint8Array): unknown {
  return parseStrictJson(decodeUtf8(bytes));
}

const CH_QUOTE = 0x22;
const CH_BACKSLASH = 0x5c;
const CH_OPEN_BRACE = 0x7b;
const CH_OPEN_BRACKET = 0x5b;
const CH_CLOSE_BRACE = 0x7d;
const CH_CLOSE_BRACKET = 0x5d;
const CH_MINUS = 0x2d;

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * One linear pass over the text, outside strings: the nesting depth, and every number
 * token's exactness. Malformed JSON is left for JSON.parse to refuse.
 */
function scanTokens(text: string): void {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === CH_QUOTE) {
      // Skip the string; escapes never end it.
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === CH_BACKSLASH) i++;
        else if (s === CH_QUOTE) break;
      }
    } else if (c === CH_OPEN_BRACE || c === CH_OPEN_BRACKET) {
      if (++depth > MAX_JSON_DEPTH) throw new StrictJsonError('json_too_deep', `JSON nested deeper than ${MAX_JSON_DEPTH} levels is not accepted`);
    } else if (c === CH_CLOSE_BRACE || c === CH_CLOSE_BRACKET) {
      depth--;
    } else if (c === CH_MINUS || isDigit(c)) {
      let end = i + 1;
      while (end < text.length && /[0-9eE.+-]/.test(text[end]!)) end++;
      checkNumber(text.slice(i, end));
      i = end - 1;
    }
  }
}

const NUMBER = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** sign, significant digits and exponent of a decimal literal, normalised; null if not one. */
function decimalOf(literal: string): { negative: boolean; digits: string; exponent: number } | null {
  const m = NUMBER.exec(literal);
  if (!m) return null;
  const [, whole = '', fraction = '', exp = '0'] = m;
  let digits = (whole + fraction).replace(/^0+/, '');
  let exponent = Number(exp) - fraction.length;
  if (digits === '') return { negative: false, digits: '0', exponent: 0 };
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  digits = trimmed;
  return { negative: literal.startsWith('-'), digits, exponent };
}

/**
 * A number is accepted only if the double it parses to has exactly the literal's decimal
 * value (compared through the double's shortest round-trip form): `0.1` and `1.50` pass;
 * `1e400` (Infinity), `1e-400` (0) and `12345678901234567890` (…7000) do not.
 */
function checkNumber(literal: string): void {
  const expected = decimalOf(literal);
  if (!expected) return; // not a number token: JSON.parse decides
  const value = Number(literal);
  const actual = Number.isFinite(value) ? decimalOf(String(value)) : null;
  if (!actual || actual.digits !== expected.digits || actual.exponent !== expected.exponent || (actual.negative !== expected.negative && expected.digits !== '0')) {
    throw new StrictJsonError(
      'number_not_exact',
      `The number ${literal.length > 40 ? `${literal.slice(0, 40)}…` : literal} cannot be stored exactly (it is out of range or has more than 15–17 significant digits); send it as a string`,
    );
  }
}

/** Strings and keys must be well-formed UTF-16 (no lone surrogate); no `__proto__` keys. Depth is already bounded. */
function checkValues(value: unknown): void {
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new StrictJsonError('invalid_string', 'A string holds a lone UTF-16 surrogate (e.g. "\\ud800"), which cannot be stored');
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) checkValues(item);
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key === '__proto__') throw new StrictJsonError('forbidden_key', 'The key "__proto__" is not accepted');
    if (!key.isWellFormed()) throw new StrictJsonError('invalid_string', 'A key holds a lone UTF-16 surrogate, which cannot be stored');
    checkValues(item);
  }
}
