import type { Command } from "commander";

export function register(program: Command): void {
  program
    .command("circuit-merge")
    .description(
      "merge the shards of circuit --pairs FILE --shard i/n into the scores one process gives (each edge's mean over every pair in file order)",
    )
    .argument("<shards...>", "the shards' --out directories")
    .requiredOption("-o, --out <dir>", "directory for scores.json (new, or one circuit-merge wrote)")
    .option("--json", "print the baseline and the top edges as JSON")
    .action(async (shards: string[], opts: { out: string; json?: boolean }) => {
      const { mergeCircuitShards } = await import("../circuit-pairs.ts");
      mergeCircuitShards(shards, opts.out, opts.json);
    });
}
