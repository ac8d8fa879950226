import { describe, expect, it } from 'vitest';
import { provisionJobId } from './catalog.js';

describe('provisionJobId', () => {
  it('is deterministic per email and generation, holds no raw email, no ":" and is not all digits', () => {
    const id = provisionJobId('ada@example.com', 1);
    expect(id).toBe(provisionJobId('ada@example.com', 1));
    expect(id).not.toBe(provisionJobId('ada@example.com', 2));
    expect(id).not.toBe(provisionJobId('bob@example.com', 1));
    expect(id).toMatch(/^prov-[0-9a-f]{64}-g1$/);
    expect(id).not.toContain('ada');
    expect(id).not.toContain(':');
  });
});
