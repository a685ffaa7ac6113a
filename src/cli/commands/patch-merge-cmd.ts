import type { Command } from "commander";

export function register(program: Command): void {
  program
    .command("patch-merge")
    .description(
      "merge the shards of patch --pairs FILE --shard i/n into the result one process gives (means over every pair in file order)",
    )
    .argument("<shards...>", "the shards' --out directories")
    .requiredOption("-o, --out <dir>", "directory for result.json (new, or one patch-merge wrote)")
    .option("--json", "print the result as JSON")
    .action(async (shards: string[], opts: { out: string; json?: boolean }) => {
      const { mergePatchShards } = await import("../patch-pairs.ts");
      mergePatchShards(shards, opts.out, opts.json);
    });
}
