import { sql } from 'kysely';
import type { Db } from './client.js';

export type ChainVerdict =
  | { intact: true; entries: number }
  | { intact: false; entries: number; brokenAt: { chainSeq: string; id: string; reason: string } };

/**
 * Walk the audit chain in order and recompute every link: an entry whose content no longer
 * matches its hash, whose prev_hash is not the previous entry's hash, or a gap in the
 * sequence (a deleted entry), is reported — the first one, since everything after a break
 * is unverifiable. Also checks the last entry against the chain head.
 */
export async function verifyAuditChain(db: Db): Promise<ChainVerdict> {
  const { rows } = await sql<{ chain_seq: string; id: string; problem: string }>`
    with walked as (
      select chain_seq, id, hash, prev_hash,
        tenantry_audit_digest(prev_hash, chain_seq, at, actor, action, tenant_id, data) as expected,
        lag(hash) over (order by chain_seq) as previous_hash,
        coalesce(lag(chain_seq) over (order by chain_seq), 0) as previous_seq
      from audit_log
    ),
    judged as (
      select chain_seq, id,
        case
          when hash <> expected then 'content does not match its hash (entry altered)'
          when chain_seq <> previous_seq + 1 then 'gap before this entry (entries deleted)'
          when prev_hash <> coalesce(previous_hash, '\\x'::bytea) then 'prev_hash does not link to the previous entry'
        end as problem
      from walked
    )
    select chain_seq::text, id::text, problem from judged where problem is not null order by chain_seq limit 1`.execute(db);
  const count = await sql<{ n: string }>`select count(*)::text as n from audit_log`.execute(db);
  const entries = Number(count.rows[0]?.n ?? 0);
  const first = rows[0];
  if (first) return { intact: false, entries, brokenAt: { chainSeq: first.chain_seq, id: first.id, reason: first.problem } };
  const head = await sql<{ seq: string; hash: Buffer }>`select seq::text, hash from audit_chain_head`.execute(db);
  const last = await sql<{ seq_text: string; id: string; hash: Buffer }>`select chain_seq::text as seq_text, id::text, hash from audit_log order by audit_log.chain_seq desc limit 1`.execute(db);
  const headRow = head.rows[0];
  const lastRow = last.rows[0];
  if (headRow && (headRow.seq !== (lastRow?.seq_text ?? '0') || (lastRow && !Buffer.from(headRow.hash).equals(Buffer.from(lastRow.hash))))) {
    return {
      intact: false,
      entries,
      brokenAt: { chainSeq: headRow.seq, id: lastRow?.id ?? '-', reason: 'the newest entries were removed (the chain head is ahead of the log)' },
    };
  }
  return { intact: true, entries };
}
