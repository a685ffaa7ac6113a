/**
 * The check every merge of shards makes before it combines anything: each shard is a file of the expected
 * format and version, all come from one run (their recorded settings are equal, the first difference named),
 * one split, no shard twice and none missing. Returns the shards in shard order, so that a merge that walks
 * them concatenates its items in file order whatever order the directories were given in.
 */
import type { Shard } from "./shard.ts";

/** What a shard file holds for this check; the rest is the merge's own. */
export interface ShardFileHeader<S> {
  format: string;
  version: number;
  settings: S;
  shard: Shard;
}

const fmt = (s: Shard) => `${s.index}/${s.count}`;

export function orderedShardSet<S extends object, D extends ShardFileHeader<S>>(
  shards: readonly { where: string; data: D }[],
  kind: {
    format: string;
    version: number;
    /** The sharded command as the user types it, e.g. "patch --pairs". */
    command: string;
  },
): D[] {
  if (shards.length === 0) throw new Error("No shards to merge.");
  const first = shards[0];
  const n = first.data.shard.count;
  for (const { where, data } of shards) {
    if (data.format !== kind.format || data.version !== kind.version)
      throw new Error(`${where} is not a version-${kind.version} ${kind.format} file.`);
    const keys = Object.keys({ ...first.data.settings, ...data.settings }) as (keyof S)[];
    for (const key of keys)
      if (JSON.stringify(first.data.settings[key]) !== JSON.stringify(data.settings[key]))
        throw new Error(
          `Shard ${fmt(data.shard)} in ${where} is from another run than shard ${fmt(first.data.shard)} in ${first.where} (${String(key)}: ${JSON.stringify(first.data.settings[key])} vs ${JSON.stringify(data.settings[key])}): merge the shards of one ${kind.command} command.`,
        );
    if (data.shard.count !== n)
      throw new Error(
        `Shard ${fmt(data.shard)} in ${where} belongs to another split than shard ${fmt(first.data.shard)} in ${first.where}.`,
      );
  }
  const byIndex = new Map<number, { where: string; data: D }>();
  for (const s of shards) {
    const twice = byIndex.get(s.data.shard.index);
    if (twice) throw new Error(`Shard ${fmt(s.data.shard)} is given twice: ${twice.where} and ${s.where}.`);
    byIndex.set(s.data.shard.index, s);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0)
    throw new Error(
      `Missing shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${n}`).join(", ")}: run ${kind.command} … --shard ${missing[0]}/${n}, or give its directory.`,
    );
  return [...byIndex.values()].map((s) => s.data).sort((a, b) => a.shard.index - b.shard.index);
}
