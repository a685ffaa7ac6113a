import type { Command } from "commander";

export function register(program: Command): void {
  program
    .command("graph-merge")
    .description(
      "merge the shards of graph --prompts FILE --shard i/n into the set one process writes (graphs/, index.json in file order)",
    )
    .argument("<shards...>", "the shards' --out directories")
    .requiredOption("-o, --out <dir>", "directory for graphs/ and index.json (new, or one graph-merge wrote)")
    .option("--json", "print the index entries as JSON")
    .action(async (shards: string[], opts: { out: string; json?: boolean }) => {
      const { mergeGraphShards } = await import("../graph-prompts.ts");
      mergeGraphShards(shards, opts.out, opts.json);
    });
}
