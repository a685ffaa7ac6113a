import type { Command } from "commander";
import { addModelOptions, type ModelCliOptions, parseIntOption, UsageError } from "../common.ts";

interface ServeOptions extends ModelCliOptions {
  port: number;
  host?: string;
  neuronIndex?: string;
}

const DEFAULT_HOST = "127.0.0.1";

export function register(program: Command): void {
  addModelOptions(
    program
      .command("serve")
      .description(
        "interactive explorer in the browser: predictions, attribution, attention, patching, neurons",
      ),
  )
    .option("--port <n>", "port to listen on (0 = any free port)", parseIntOption("port"), 8080)
    .option(
      "--host <address>",
      `address to bind (default ${DEFAULT_HOST}; 0.0.0.0 exposes the model to your network)`,
    )
    .option("--neuron-index <dir>", "neuron index directory (from `circuitscope index`) for neuron lookups")
    .action(async (opts: ServeOptions) => {
      if (!opts.model)
        throw new UsageError("No model given: pass --model gpt2 (or a local checkpoint directory)");
      if (opts.port < 0 || opts.port > 65535)
        throw new UsageError(`--port must be 0..65535, got ${opts.port}`);
      // Loopback unless the user names another address: exposing the model is an explicit choice.
      const host = opts.host ?? DEFAULT_HOST;
      const { createServer } = await import("../../server/app.ts");
      process.stderr.write(`Loading ${opts.model}…\n`);
      const server = await createServer({
        model: {
          model: opts.model,
          backend: opts.backend,
          process: opts.process !== false,
          offline: opts.offline,
        },
        neuronIndex: opts.neuronIndex,
      });
      const address = await server.app.listen({ port: opts.port, host });
      process.stdout.write(
        `circuitscope explorer for ${opts.model}: ${address.replace("[::1]", "localhost")}/\n`,
      );
      if (host === "0.0.0.0" || host === "::") {
        process.stderr.write(
          "Warning: listening on every network interface; anyone who can reach this machine can use it.\n",
        );
      }
      const stop = () => {
        void server.close().then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
